"""Scale: the operator with many finished and running jobs in the cluster — its memory, its CPU
per job as the cluster fills (sampled while the jobs start), and the latency from a worker failure
to the job's status showing the restart.

    .venv/bin/python bench/scale.py --finished 1000 --running 200 --probes 10
    .venv/bin/python bench/scale.py --finished 0 --running 5000 --workers 4 --probes 5 --probe-at pods
"""

from __future__ import annotations

import argparse
import concurrent.futures
import math
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kubernetes
from control_plane import PODS_PER_NODE, ROOT, Kubetrain, kubetrain_job, proc_usage

from kubetrain.devcluster.binaries import ensure_binaries
from kubetrain.devcluster.cluster import LocalCluster
from kubetrain.devcluster.nodepools import DevNodePool

GROUP, VERSION, PLURAL = "kubetrain.io", "v1alpha1", "trainingjobs"


@dataclass
class Sample:
    """The cluster and the operator at one moment while the jobs start."""

    seconds: float
    pods: int
    running_jobs: int
    operator_cpu: float


def print_samples(samples: list[Sample], every: float) -> None:
    """Per interval of about `every` seconds: pods created and jobs turned Running in it, and the
    operator's CPU per pod created. Flat CPU per pod while the rate falls says the slowdown is the
    cluster's (API server, scheduler, KWOK on the same cores), not the operator's cost per job."""
    rows = [samples[0]]
    for sample in samples[1:]:
        if sample.seconds - rows[-1].seconds >= every or sample is samples[-1]:
            rows.append(sample)
    print(f"{'min':>6} {'pods':>7} {'Running':>8} {'pods/min':>9} {'op CPU s':>9} {'op CPU ms/pod':>14}")
    for before, after in zip(rows, rows[1:]):
        created = after.pods - before.pods
        minutes = (after.seconds - before.seconds) / 60
        cpu = after.operator_cpu - before.operator_cpu
        per_pod = f"{cpu / created * 1000:.1f}" if created else "-"
        print(f"{after.seconds / 60:>6.1f} {after.pods:>7} {after.running_jobs:>8} {created / minutes:>9.0f} "
              f"{cpu:>9.1f} {per_pod:>14}")


def wait(predicate: Callable[[], object], timeout: float, what: str, interval: float = 0.2) -> float:
    """Seconds until `predicate` holds. A predicate that lists every job wants a longer `interval`:
    at thousands of jobs each listing is megabytes the API server and this process must encode and
    decode, on the same cores as the operator being measured."""
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(interval)
    return time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--finished", type=int, default=1000)
    parser.add_argument("--running", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--probes", type=int, default=10, help="worker failures to time")
    parser.add_argument("--sample-every", type=float, default=120.0, help="seconds per row of the start table")
    parser.add_argument("--probe-at", choices=("running", "pods"), default="running",
                        help="fail workers once every job runs (and the finished ones have finished), or as soon "
                        "as every pod exists, while the cluster is still scheduling and starting them")
    parser.add_argument("--kwok-parallelism", type=int, default=16,
                        help="pods KWOK moves through their stages at a time (KWOK's default is 4, the slowest "
                        "stage of a 20,000-pod run)")
    args = parser.parse_args()
    ensure_binaries()
    work = Path(tempfile.mkdtemp(prefix="kubetrain-scale-"))
    nodes = math.ceil((args.finished + args.running) * args.workers / PODS_PER_NODE) + 1
    pool = DevNodePool(name="cpu", regions=["eu-west-1"] * nodes, cpu="1000", memory="4Ti")
    cluster = LocalCluster(work / "cluster", pools=[pool], local_node=False,
                           apiserver_args=["--max-requests-inflight=800", "--max-mutating-requests-inflight=400"],
                           kwok_parallelism=args.kwok_parallelism)
    namespace = "scale"
    operator: subprocess.Popen[bytes] | None = None
    try:
        cluster.start()
        cluster.kubectl("apply", "--server-side", "-f", str(ROOT / "crds"))
        cluster.kubectl("wait", "--for=condition=Established", "--all", "crd", "--timeout=60s")
        api = kubernetes.config.new_client_from_config(config_file=str(cluster.kubeconfig))
        api.user_agent = "kubetrain-bench"
        core, custom = kubernetes.client.CoreV1Api(api), kubernetes.client.CustomObjectsApi(api)
        core.create_namespace({"metadata": {"name": namespace}})
        operator = Kubetrain().start(cluster, namespace, work / "operator.log")
        total = args.finished + args.running

        def submit(index: int) -> None:
            body = kubetrain_job(f"job-{index:05d}", args.workers)
            body["spec"]["runPolicy"] = {"backoffLimit": args.probes + 1}
            custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)

        samples: list[Sample] = []

        def phases() -> dict[str, int]:
            counts: dict[str, int] = {}
            for job in custom.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)["items"]:
                phase = (job.get("status") or {}).get("phase", "-")
                counts[phase] = counts.get(phase, 0) + 1
            # A one-item list counts the pods without sending them all.
            listed = core.list_namespaced_pod(namespace, limit=1)
            pods = len(listed.items) + (listed.metadata.remaining_item_count or 0)
            cpu, _ = proc_usage(operator.pid)
            samples.append(Sample(time.monotonic() - began, pods, counts.get("Running", 0), cpu))
            print(f"# {samples[-1]}", file=sys.stderr, flush=True)  # kept if the run is cut short
            return counts

        def fail_once(name: str, run_again: bool) -> float:
            """Fails one worker of `name` (KWOK's outcome annotation) and returns the seconds until
            status.restarts has grown; `run_again`: then waits for the job to be Running again."""
            def status() -> dict[str, Any]:
                job: dict[str, Any] = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
                return job.get("status") or {}

            def restarts() -> int:
                return int(status().get("restarts") or 0)

            def phase() -> str:
                return str(status().get("phase"))

            before = restarts()
            pod = next(
                p
                for p in core.list_namespaced_pod(namespace, label_selector=f"kubetrain.io/job-name={name}").items
                if p.metadata.deletion_timestamp is None
            )
            started = time.monotonic()
            core.patch_namespaced_pod(pod.metadata.name, namespace, {"metadata": {"annotations": {
                "kwok.kubetrain.io/outcome": "Failed", "kwok.kubetrain.io/exit-code": "1"}}})
            wait(lambda: restarts() > before, 120, f"{name} to restart")
            latency = time.monotonic() - started
            if run_again:
                wait(lambda: phase() == "Running", 120, f"{name} to run again")
            return latency

        latencies: list[float] = []
        began = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(8) as pool_:
            list(pool_.map(submit, range(total)))
        print(f"# submitted {total} jobs in {time.monotonic() - began:.0f} s", file=sys.stderr, flush=True)
        # Listing thousands of jobs every few seconds would load the cores the operator shares.
        interval = max(5.0, total / 500)
        if args.probe_at == "pods":
            def every_pod() -> bool:
                phases()
                return samples[-1].pods >= total * args.workers

            wait(every_pod, 7200, "every pod", interval=interval)
            # The first jobs have run longest; each probe fails a different one, whose restart
            # then waits in the busy scheduler's queue, so the next probe does not wait for it.
            for probe in range(args.probes):
                latencies.append(fail_once(f"job-{probe:05d}", run_again=False))
                print(f"# probe {probe}: {latencies[-1] * 1000:.0f} ms", file=sys.stderr, flush=True)
        wait(lambda: phases().get("Running", 0) >= total, 7200, "every job Running", interval=interval)
        running_seconds = time.monotonic() - began
        print(f"# every job Running {running_seconds:.0f} s after the first was submitted", file=sys.stderr, flush=True)

        def finish(index: int) -> None:
            for worker in range(args.workers):
                core.patch_namespaced_pod(f"job-{index:05d}-worker-{worker}", namespace, {"metadata": {"annotations": {
                    "kwok.kubetrain.io/outcome": "Succeeded", "kwok.kubetrain.io/exit-code": "0"}}})

        with concurrent.futures.ThreadPoolExecutor(8) as pool_:
            list(pool_.map(finish, range(args.running, total)))
        wait(lambda: phases().get("Succeeded", 0) >= args.finished, 3600, "the finished jobs Succeeded", interval=5.0)
        print(f"# {args.finished} finished, {args.running} running", file=sys.stderr, flush=True)
        if args.probe_at == "running":
            time.sleep(5)
            for probe in range(args.probes):
                latencies.append(fail_once(f"job-{probe % args.running:05d}", run_again=True))
        cpu, rss = proc_usage(operator.pid)
    finally:
        if operator is not None:  # also when the run fails: a leftover operator holds its ports
            operator.terminate()
            operator.wait(timeout=30)
        cluster.stop()
    print(f"jobs: {args.finished} finished + {args.running} running, {args.workers} workers each")
    print(f"every job Running after {running_seconds:.0f} s ({running_seconds / total * 1000:.0f} ms per job)")
    print(f"operator peak RSS: {rss:.0f} MiB, CPU: {cpu:.1f} s")
    print_samples(samples, args.sample_every)
    print(f"pod failure -> status.restarts (n={len(latencies)}): median {statistics.median(latencies) * 1000:.0f} ms, "
          f"max {max(latencies) * 1000:.0f} ms (includes KWOK's 100 ms stage delay)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
