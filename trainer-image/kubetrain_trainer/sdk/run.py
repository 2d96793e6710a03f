"""One training run as users' code reports it: live progress and metrics, checkpoints, the data set
read, the exported model and the final metrics, through the same channels as the built-in trainer
(docs/contracts.md, "Trainer -> status"):

- `status.progress`, `status.metrics` and `status.lastCheckpoint` by server-side apply on the
  TrainingJob's status subresource, as field manager `kubetrain-trainer`, with the per-job
  ServiceAccount's least-privilege Role (status.StatusReporter: one background thread, rate
  limited, never blocking or failing the training loop);
- the final report in the termination message (termination.report), which carries the final
  metrics and the provenance only the code knows (the data set's URI, digest and profile, the
  weights' digest, the model card) to the operator's gates and ModelVersion records;
- the metric history, `metrics.jsonl` in spec.output.uri (every progress() as a train record,
  log_metrics() as validation, finish() as test), its curves `curves.png` at finish(), and the
  SDK's own log lines in `logs/rank-0.log` there (history.py, logs.py), which outlive the pods.

Only global rank 0 reports (RANK, as torchrun and Ray Train set it); every other rank gets an
inactive run whose calls do nothing, so a script calls the SDK on every rank without branching.
Outside a TrainingJob (no KUBETRAIN_JOB_NAME) the run is inactive too, and says so once.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, NoReturn

from kubetrain_trainer import __version__, logs, modelcard, storage, termination
from kubetrain_trainer.environment import JobEnvironment, int_var
from kubetrain_trainer.errors import Reason, TrainerFailure
from kubetrain_trainer.status import StatusReporter, rfc3339
from kubetrain_trainer.stopping import Stopped, StopRequest

if TYPE_CHECKING:
    from kubetrain_trainer.history import History

DEFAULT_INTERVAL_SECONDS = 10.0


def global_rank(env: Mapping[str, str]) -> int:
    """The process's rank in the whole job: torchrun and Ray Train set RANK per process; a pod
    running one process has the operator's RANK (its first process's rank)."""
    return int_var(env, "RANK", 0)


def inactive_reason(env: Mapping[str, str]) -> str | None:
    """Why this process does not report, or None when it does; empty for ranks other than 0,
    silent by design (rank 0 says it once for the whole job)."""
    if global_rank(env) != 0:
        return ""
    if not env.get("KUBETRAIN_JOB_NAME"):
        return "not running in a kubetrain TrainingJob (KUBETRAIN_JOB_NAME is unset): nothing is reported"
    return None


class Run:
    """The run's reported state. Each status write carries every trainer-owned field (server-side
    apply removes the fields its manager stops sending), so progress, checkpoint and final metrics
    never erase each other."""

    def __init__(
        self,
        env: JobEnvironment | None,
        reporter: StatusReporter | None,
        code_version: str | None = None,
        history: History | None = None,
        stop: StopRequest | None = None,
    ) -> None:
        """`env` None: an inactive run (another rank, or no TrainingJob). `reporter` None: no API
        server to write to; the final report still goes to the termination message. `history`
        None: no output location to keep the metric history in. `stop`: SIGTERM's request when
        the code asked to handle SIGTERM itself (init(catch_sigterm=True)), on every rank."""
        self.env = env
        self._stop = stop
        self._reporter = reporter
        self._history = history
        self._history_section: dict[str, Any] = {}
        self._code_version = code_version
        self._started = rfc3339()
        self._began: float | None = None
        self._first_step: int | None = None
        self._progress: dict[str, Any] = {}
        self._live: dict[str, float] = {}
        self._checkpoint: dict[str, Any] | None = None
        self._dataset: dict[str, Any] = {}
        self._model: dict[str, Any] = {}
        self._finished = False

    @property
    def active(self) -> bool:
        return self.env is not None

    @property
    def stop_requested(self) -> bool:
        """This process got SIGTERM (a preemption, an eviction, a drain) since init(catch_sigterm=True):
        time to checkpoint and call stop(). Per process: DDP ranks must agree on it before acting
        (one all-reduce of the flag at a step every rank reaches), or some rank waits in a
        collective the others left."""
        return self._stop is not None and self._stop.requested

    def stop(self, step: int) -> NoReturn:
        """Leaves the run after SIGTERM, once the code has written (and reported, checkpoint()) the
        checkpoint of `step`: fails the run with "stopped on SIGTERM at step N" as TrainerError
        (the pod did not finish its work; after a Kueue eviction the next attempt resumes from
        status.lastCheckpoint, and no restart is counted) and raises Stopped. Every rank calls it."""
        message = f"stopped on SIGTERM at step {step}"
        if self._checkpoint is not None:
            message += f", after checkpoint {self._checkpoint['uri']} (step {self._checkpoint['step']})"
        logs.info("stopped_on_sigterm", step=step)
        self.fail("TrainerError", message)
        raise Stopped(message)

    def progress(
        self,
        step: int,
        total_steps: int | None = None,
        epoch: int | None = None,
        total_epochs: int | None = None,
        loss: float | None = None,
        samples_per_second: float | None = None,
        metrics: Mapping[str, float] | None = None,
    ) -> None:
        """Training progress after optimizer step `step` (epochs 1-based); the ETA is derived from
        the time since the first step reported. Sent at most once per interval."""
        if not self.active:
            return
        now = time.monotonic()
        if self._began is None or self._first_step is None:
            self._began, self._first_step = now, step
        self._live.update(_numbers(metrics or {}))
        document: dict[str, Any] = {
            "step": step, "epoch": epoch, "totalEpochs": total_epochs, "totalSteps": total_steps
        }
        if loss is not None and math.isfinite(loss):
            document["trainLoss"] = round(loss, 6)
        if samples_per_second is not None:
            document["samplesPerSecond"] = round(samples_per_second, 2)
        if total_steps:
            document["percent"] = round(100.0 * min(step, total_steps) / total_steps, 2)
            done = step - self._first_step
            if done > 0:
                document["etaSeconds"] = round(max(total_steps - step, 0) * (now - self._began) / done)
        self._progress = {key: value for key, value in document.items() if value is not None}
        if self._history is not None:
            self._history.record(step, "train", {"loss": loss, **(metrics or {})}, epoch=epoch)
        if self._reporter is not None and self._reporter.offer(self._status()):
            logs.info("progress", **self._progress)

    def log_metrics(self, metrics: Mapping[str, float]) -> None:
        """Live metrics (validation loss, accuracy so far): status.progress.metrics, with the next
        progress update or now when the interval allows."""
        if not self.active:
            return
        self._live.update(_numbers(metrics))
        if self._history is not None:
            self._history.record(self._progress.get("step", 0), "validation", metrics, self._progress.get("epoch"))
        if self._reporter is not None:
            self._reporter.offer(self._status())

    def checkpoint(self, uri: str, step: int, digest: str | None = None) -> None:
        """A checkpoint written at `uri` (file or directory): status.lastCheckpoint, sent now.
        The digest is computed from what `uri` holds when not given."""
        if not self.active:
            return
        self._checkpoint = {
            "step": step,
            "uri": uri,
            "digest": digest or storage.content_digest(uri),
            "time": rfc3339(),
        }
        logs.info("checkpoint", **self._checkpoint)
        if self._reporter is not None:
            self._reporter.send(self._status())

    def dataset(
        self, uri: str | None = None, digest: str | None = None, profile: Mapping[str, Any] | None = None
    ) -> str | None:
        """The data set the code actually read (default: spec.dataset.uri), its content digest
        (computed from `uri` when not given) and profile (kubetrain_trainer.profile). Returns the
        digest (None on an inactive run)."""
        if self.env is None:
            return None
        uri = uri or self.env.dataset_uri
        if not uri:
            raise ValueError("dataset(): no uri given and spec.dataset.uri is unset; pass the URI the code read")
        self._dataset = {"uri": uri, "digest": digest or storage.content_digest(uri), "profile": dict(profile or {})}
        logs.info("dataset_read", **self._dataset)
        return str(self._dataset["digest"])

    def export_model(self, uri: str, card: Mapping[str, Any] | None = None) -> str | None:
        """The exported model at `uri` (a weights file, or a directory such as save_pretrained's):
        its digest, and `model-card.json` (and `model-card.md`) beside the file or inside the directory, with `card`
        (name, description, anything the code knows) under "model". Returns the digest (None on
        an inactive run)."""
        if self.env is None:
            return None
        directory = storage.is_local(uri) and storage.local_path(uri).is_dir()
        card_dir = uri if directory else uri.rsplit("/", 1)[0]
        card_uri = storage.join(card_dir, modelcard.CARD)
        digest = storage.content_digest(uri, ignore=frozenset({modelcard.CARD, modelcard.MARKDOWN}))
        self._model = {"uri": uri, "digest": digest, "cardUri": card_uri, "card": dict(card or {})}
        modelcard.write(card_uri, self._card({}))
        logs.info("exported", weights=uri, digest=digest, card=card_uri)
        return digest

    def finish(self, metrics: Mapping[str, float] | None = None, message: str | None = None) -> None:
        """The run succeeded with these final (held-out) metrics: status.metrics, the final report
        the operator's gates judge, and the model card rewritten with them. Once per run."""
        if self.env is None or self._finished:
            return
        self._finished = True
        final = {key: round(value, 6) for key, value in _numbers(metrics or {}).items()}
        if self._history is not None:
            self._history.record(self._progress.get("step", 0), "test", final, self._progress.get("epoch"))
            self._history_section = self._history.close()
        if self._model:
            modelcard.write(self._model["cardUri"], self._card(final))
        if self._reporter is not None:
            self._reporter.finish({**self._status(), "metrics": final})
        summary = ", ".join(f"{key} {value:.4g}" for key, value in list(final.items())[:4])
        text = message or f"finished after {self._progress.get('step', 0)} steps" + (f": {summary}" if summary else "")
        report = termination.report("Succeeded", "Completed", text, final, self._model.get("uri"), self._provenance())
        termination.write(self.env.termination_message_path, report)
        logs.info("finished", **final)
        logs.close_archive()

    def fail(self, reason: Reason, message: str) -> None:
        """The run failed: the final report names the reason (InvalidData, InvalidConfig and
        Diverged fail the job at once; TrainerError is retried up to runPolicy.backoffLimit)."""
        if self.env is None or self._finished:
            return
        self._finished = True
        if self._reporter is not None:
            self._reporter.finish(self._status())
        termination.write(self.env.termination_message_path, termination.report("Failed", reason, message))
        logs.error("failed", reason=reason, message=message)
        logs.close_archive()

    def __enter__(self) -> Run:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, _trace: TracebackType | None
    ) -> None:
        """Ends the run with the code's outcome: an exception fails it (a TrainerFailure with its
        own reason) and is re-raised; leaving normally finishes it if the code did not."""
        if error is None:
            self.finish()
        elif isinstance(error, TrainerFailure):
            self.fail(error.reason, error.message)
        elif kind is not None and not issubclass(kind, (KeyboardInterrupt, SystemExit)):
            self.fail("TrainerError", f"{kind.__name__}: {error}")

    def _status(self) -> dict[str, Any]:
        status: dict[str, Any] = {}
        if self._progress or self._live:
            status["progress"] = {**self._progress, "metrics": dict(self._live), "updateTime": rfc3339()}
        if self._checkpoint is not None:
            status["lastCheckpoint"] = self._checkpoint
        return status

    def _provenance(self) -> dict[str, Any]:
        produced = {
            "datasetUri": self._dataset.get("uri"),
            "datasetDigest": self._dataset.get("digest"),
            "datasetProfile": self._dataset.get("profile") or None,
            "weightsUri": self._model.get("uri"),
            "weightsDigest": self._model.get("digest"),
            "modelCardUri": self._model.get("cardUri"),
            "codeVersion": self._code_version,
        }
        return {key: value for key, value in produced.items() if value is not None}

    def _card(self, metrics: dict[str, float]) -> dict[str, Any]:
        assert self.env is not None
        data = {"uri": self._dataset.get("uri") or self.env.dataset_uri or None, "sha256": self._dataset.get("digest"),
                "profile": self._dataset.get("profile"), **self.env.data_terms()}
        return {
            **modelcard.job_facts(self.env, self._code_version),
            "data": data,
            "model": self._model["card"],
            "training": {**self._progress, "worldSize": self.env.topology.world_size,
                         "lastCheckpoint": self._checkpoint},
            "metrics": metrics,
            "weights": {"uri": self._model["uri"], "sha256": self._model["digest"]},
            "startTime": self._started,
            "endTime": rfc3339(),
            "software": modelcard.software(kubetrainTrainer=__version__),
            **({"history": self._history_section} if self._history_section else {}),
        }


def start(
    env: Mapping[str, str] | None = None,
    code_version: str | None = None,
    interval_seconds: float = DEFAULT_INTERVAL_SECONDS,
    catch_sigterm: bool = False,
) -> Run:
    """The run of this process, from the environment the operator rendered; inactive (every call a
    no-op) on ranks other than 0 and outside a TrainingJob, the latter said in one log line.
    `catch_sigterm`: SIGTERM no longer ends the process but sets Run.stop_requested, which the
    code must then act on (checkpoint, stop()) before the pod's grace period ends and the kubelet
    kills it; off by default, so that code which never looks still stops at once."""
    env = os.environ if env is None else env
    stop = StopRequest().install() if catch_sigterm else None
    reason = inactive_reason(env)
    if reason is not None:
        if reason:
            logs.configure_unless_set("-", "-", global_rank(env))
            logs.warning("kubetrain_sdk_inactive", reason=reason)
        return Run(None, None, stop=stop)
    environment = JobEnvironment.from_env(env)
    logs.configure_unless_set(environment.namespace, environment.name, 0)
    logs.archive(environment.output_uri, 0)
    version = code_version or env.get("KUBETRAIN_CODE_VERSION") or None
    history = None
    if environment.output_uri:
        # Imported for an active run only: it loads pydantic, which importing the SDK must not.
        from kubetrain_trainer.history import History

        history = History(environment.output_uri)
    return Run(environment, StatusReporter.from_environment(environment, interval_seconds), version, history, stop)


def _numbers(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The finite numbers among `metrics` (a Hugging Face log also carries strings and None):
    status.metrics is a map of numbers."""
    kept: dict[str, float] = {}
    for key, value in metrics.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if math.isfinite(value):
            kept[str(key)] = float(value)
    return kept
