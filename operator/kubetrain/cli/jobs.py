"""The job verbs of `kubetrain` (submit, get, list, describe, watch, logs, curve, cancel, suspend,
resume): each a thin layer over the Python client (kubetrain.client) and the formatting in
cli/show.py and cli/curve.py, against whichever cluster the kubeconfig names.

Exit codes: 0 done (for `watch`: the job Succeeded), 1 the job Failed, was refused or is gone,
2 a usage error or a manifest refused before sending (as argparse's own 2).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import yaml
from kubernetes.client.exceptions import ApiException

from kubetrain.api.history import MetricRecord
from kubetrain.api.nodepools import NodePoolCatalogue, default_catalogue, load_catalogue
from kubetrain.api.status import Phase
from kubetrain.cli import curve, show, sweep_show
from kubetrain.cli.trainer import trainer_installed
from kubetrain.client import Client, JobGone, LogLine, NotServable
from kubetrain.client.submit import Refused, load_manifests, preview

Verb = Callable[[Client, argparse.Namespace], int]


def _say(line: str) -> None:
    print(f"kubetrain: {line}", file=sys.stderr)


def _server_message(exc: ApiException) -> str:
    """The API server's own words (a webhook's refusal, RBAC's denial), not the HTTP wrapping."""
    try:
        return str(yaml.safe_load(exc.body or "")["message"])
    except (TypeError, KeyError, yaml.YAMLError):
        return str(exc.reason)


def _catalogue(path: Path | None) -> NodePoolCatalogue:
    return load_catalogue(yaml.safe_load(path.read_text())) if path is not None else default_catalogue()


def _submit(client: Client, args: argparse.Namespace) -> int:
    try:
        manifests = load_manifests(args.file)
        previews = [preview(client, manifest, _catalogue(args.node_pools)) for manifest in manifests]
    except Refused as exc:
        _say(str(exc))
        return 2
    refused = False
    for manifest, seen in zip(manifests, previews, strict=True):
        print("\n".join(show.submit_summary(seen)))
        if seen.refused:
            _say(f"not created: the operator would refuse {seen.job.metadata.name} (above)")
            refused = True
            continue
        if args.dry_run:
            continue
        created = client.create(manifest)
        print(f"trainingjob.kubetrain.io/{created.metadata.name} created")
    return 1 if refused else 0


def _list(client: Client, args: argparse.Namespace) -> int:
    jobs = [client.get(name) for name in args.names] if args.names else client.list_jobs()
    if not jobs:
        _say(f"no TrainingJobs in namespace {client.namespace}")
        return 0
    print("\n".join(show.job_table(jobs, datetime.now(UTC))))
    return 0


def _describe(client: Client, args: argparse.Namespace) -> int:
    job = client.get(args.name)
    print("\n".join(show.describe(job, client.events(args.name), datetime.now(UTC))))
    return 0


def _sweep(client: Client, args: argparse.Namespace) -> int:
    sweep = client.sweep(args.name)
    print("\n".join(sweep_show.describe_sweep(sweep, client.events(args.name, sweep.kind), datetime.now(UTC))))
    return 0


def _watch(client: Client, args: argparse.Namespace) -> int:
    """Prints a line whenever what it shows changes; exits with the outcome (0 Succeeded, 1 Failed;
    3 when --timeout passes first, as a job still running is neither)."""
    shown, job = "", None
    for job in client.watch(args.name, timeout=args.timeout):
        line = show.watch_line(job)
        if line != shown:
            stamp = datetime.now().strftime("%H:%M:%S")
            print(f"{stamp}  {line}", flush=True)
            shown = line
    if job is None or job.status.phase not in (Phase.SUCCEEDED, Phase.FAILED):
        _say(f"{args.name} has not finished after {args.timeout}s")
        return 3
    return 0 if job.status.phase == Phase.SUCCEEDED else 1


def _logs(client: Client, args: argparse.Namespace) -> int:
    """The pods' output; once no pods are left (cleaned up, or the job finished long ago), the
    logs the trainer archived in the job's output location, said in one line on stderr."""
    try:
        for line in client.logs(args.name, follow=args.follow, rank=args.rank):
            _print_log_line(line, args.rank)
        return 0
    except LookupError as exc:
        no_pods = str(exc)
    try:
        archived = client.archived_logs(args.name, rank=args.rank)
    except LookupError as exc:
        _say(no_pods)
        _say(str(exc))
        return 1
    _say(f"{no_pods}; showing the archived logs in {archived.location}")
    for line in archived.lines:
        _print_log_line(line, args.rank)
    return 0


def _print_log_line(line: LogLine, rank: int | None) -> None:
    print(line.text if rank is not None else f"[{line.source}] {line.text}", flush=True)


def _curve(client: Client, args: argparse.Namespace) -> int:
    """The job's training and validation curves from its metric history, in the terminal and
    with --png as an image; 1 when there is no history (yet), it is not one, or no such metric."""
    try:
        records = client.history(args.name)
    except (LookupError, ValueError) as exc:  # ValueError: pydantic's, a line that is not a record
        _say(str(exc))
        return 1
    curves = curve.series(records)
    if args.metric is not None:
        if args.metric not in curves:
            _say(f"no metric {args.metric!r} in the history of {args.name}; it has: {', '.join(curves) or 'none'}")
            return 1
        curves = {args.metric: curves[args.metric]}
    if not curves:
        _say(f"the history of {args.name} holds no metrics yet")
        return 1
    print("\n".join(curve.charts(curves)))
    if args.png is not None:
        return _curve_png(records, args.png, args.metric)
    return 0


def _curve_png(records: list[MetricRecord], png: Path, metric: str | None) -> int:
    """The PNG drawn by the trainer's own code from the same records; 2 where it is not installed."""
    if not trainer_installed("curve --png"):
        return 2
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl") as history:
        history.write("".join(record.model_dump_json() + "\n" for record in records))
        history.flush()
        drawn = subprocess.run(curve.png_argv(Path(history.name), png, metric), check=False)
    if drawn.returncode == 0:
        print(f"wrote {png}")
    return drawn.returncode


def _cancel(client: Client, args: argparse.Namespace) -> int:
    client.delete(args.name)
    print(f"trainingjob.kubetrain.io/{args.name} deleted")
    return 0


def _suspend(client: Client, args: argparse.Namespace) -> int:
    client.set_suspended(args.name, True)
    print(f"trainingjob.kubetrain.io/{args.name} suspended (its workers are stopped; `kubetrain resume` starts them)")
    return 0


def _resume(client: Client, args: argparse.Namespace) -> int:
    client.set_suspended(args.name, False)
    print(f"trainingjob.kubetrain.io/{args.name} resumed")
    return 0


def with_client(verb: Verb) -> Callable[[argparse.Namespace], int]:
    """The verb with a client for --kubeconfig/--namespace; a missing job or model version, or an
    API refusal, is reported in one line with exit code 1, not a traceback."""
    def run(args: argparse.Namespace) -> int:
        try:
            return verb(Client(namespace=args.namespace, kubeconfig=args.kubeconfig), args)
        except (JobGone, NotServable) as exc:
            _say(str(exc))
        except ApiException as exc:
            _say(f"the API server answered {exc.status}: {_server_message(exc)}")
        return 1
    return run


def client_options() -> argparse.ArgumentParser:
    """--kubeconfig and --namespace, the options of every verb that talks to a cluster."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--kubeconfig", type=Path, default=None, help="default: $KUBECONFIG, else ~/.kube/config")
    common.add_argument("-n", "--namespace", default=None, help="default: the kubeconfig context's namespace")
    return common


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    common = client_options()

    def verb(name: str, func: Verb, help_: str) -> argparse.ArgumentParser:
        parser = sub.add_parser(name, parents=[common], help=help_, description=help_)
        parser.set_defaults(func=with_client(func))
        return parser

    submit = verb("submit", _submit, "validate a TrainingJob manifest as the operator would, show what will run, "
                  "its cost and the residency and budget verdicts, then create it")
    submit.add_argument("-f", "--file", type=Path, required=True, help="YAML manifest (one or more TrainingJobs)")
    submit.add_argument("--dry-run", action="store_true", help="validate and show, create nothing")
    submit.add_argument("--node-pools", type=Path, default=None,
                        help="the operator's node-pool catalogue, for prices (default: the built-in pools)")
    verb("get", _list, "jobs as a table: phase, progress, metrics, reason").add_argument(
        "names", nargs="+", metavar="JOB"
    )
    verb("list", _list, "every job of the namespace as a table: phase, progress, metrics, reason").set_defaults(
        names=[]
    )
    verb("describe", _describe, "a job's state, conditions, events, provenance, cost and model version").add_argument(
        "name", metavar="JOB"
    )
    verb("sweep", _sweep, "a TrainingSweep: phase, best trial, cost, the trial table and the objective by "
         "trial").add_argument("name", metavar="SWEEP")
    watch = verb("watch", _watch, "follow a job's progress until it ends; exit 0 Succeeded, 1 Failed")
    watch.add_argument("name", metavar="JOB")
    watch.add_argument("--timeout", type=float, default=None, help="seconds; exit 3 if the job is still running")
    logs = verb("logs", _logs, "the workers' output, each line prefixed with its rank (once the pods are gone: "
                "the trainer's logs archived in the output location)")
    logs.add_argument("name", metavar="JOB")
    logs.add_argument("-f", "--follow", action="store_true", help="stream until every worker's output ends")
    logs.add_argument("--rank", type=int, default=None, help="only this worker (no prefix)")
    curves = verb("curve", _curve, "a job's training and validation curves from the metric history in its output "
                  "location, as text charts (and a PNG with --png)")
    curves.add_argument("name", metavar="JOB")
    curves.add_argument("--metric", default=None, help="only this metric (default: every metric recorded)")
    curves.add_argument("--png", type=Path, default=None, metavar="FILE", help="also write the curves as a PNG")
    verb("cancel", _cancel, "delete a job and its pods").add_argument("name", metavar="JOB")
    verb("suspend", _suspend, "stop a job's workers and hold it (spec.runPolicy.suspend)").add_argument(
        "name", metavar="JOB"
    )
    verb("resume", _resume, "start a suspended job's workers again").add_argument("name", metavar="JOB")
