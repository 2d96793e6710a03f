"""The trainer's Ray mode: the driver the Ray head runs (`python -m kubetrain_trainer.ray_train`).

It runs the SAME training as a PyTorch worker (job.train: data, model, loop, checkpoints,
evaluation, export, status reporting by rank 0) inside a Ray Train TorchTrainer, whose scaling
comes from the head's env (docs/contracts.md). Ray Train owns the process group; rank 0 hands its
final report back through a small actor, and the driver writes it as the head's termination
message, so the operator reads a Ray job's outcome and metrics exactly as a PyTorch job's.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import ray
from ray.train import FailureConfig, RunConfig, ScalingConfig
from ray.train.torch import TorchTrainer

from kubetrain_trainer import job, logs, termination
from kubetrain_trainer.config import parse_task
from kubetrain_trainer.environment import JobEnvironment, int_var
from kubetrain_trainer.errors import TrainerFailure
from kubetrain_trainer.status import rfc3339

# The job's own variables travel from the driver to every training worker, so a worker trains
# what the head was told even where its node's env differs (or, locally, has none).
JOB_ENV_NAMES = (
    "KUBETRAIN_JOB_NAME",
    "KUBETRAIN_JOB_NAMESPACE",
    "KUBETRAIN_JOB_UID",
    "KUBETRAIN_ATTEMPT",
    "KUBETRAIN_TASK",
    "KUBETRAIN_DATASET_URI",
    "KUBETRAIN_OUTPUT_URI",
    "KUBETRAIN_CODE_VERSION",
    "KUBETRAIN_IMAGE",
    "KUBETRAIN_SUBMITTED_BY",
)


@dataclass(frozen=True)
class RayScaling:
    """The head's KUBETRAIN_RAY_* variables (render/ray.py): the TorchTrainer's scaling."""

    address: str | None
    train_workers: int
    cpus_per_worker: float
    gpus_per_worker: float
    max_failures: int

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> RayScaling:
        """Without KUBETRAIN_RAY_HEAD_HOST the driver starts (or joins, via RAY_ADDRESS) a local Ray."""
        host = env.get("KUBETRAIN_RAY_HEAD_HOST")
        return cls(
            address=f"{host}:{env.get('KUBETRAIN_RAY_GCS_PORT', '6379')}" if host else None,
            train_workers=int_var(env, "KUBETRAIN_RAY_TRAIN_WORKERS", 1),
            cpus_per_worker=float(env.get("KUBETRAIN_RAY_CPUS_PER_TRAIN_WORKER") or 1),
            gpus_per_worker=float(env.get("KUBETRAIN_RAY_GPUS_PER_TRAIN_WORKER") or 0),
            max_failures=int_var(env, "KUBETRAIN_RAY_MAX_FAILURES", 0),
        )

    def scaling_config(self) -> ScalingConfig:
        resources = {"CPU": self.cpus_per_worker}
        if self.gpus_per_worker > 0:
            resources["GPU"] = self.gpus_per_worker
        return ScalingConfig(
            num_workers=self.train_workers, use_gpu=self.gpus_per_worker > 0, resources_per_worker=resources
        )


@ray.remote(num_cpus=0)
class ReportBox:
    """Holds rank 0's final report for the driver (Ray Train's own result carries only
    checkpoint metrics). Zero CPUs, so it fits on the head, which advertises none."""

    def __init__(self) -> None:
        self._report: str | None = None

    def put(self, report: str) -> None:
        self._report = report

    def get(self) -> str | None:
        return self._report


def train_worker(config: dict[str, Any]) -> None:
    """One Ray Train worker: the PyTorch path's job.train, with the topology Ray Train assigned."""
    context = ray.train.get_context()
    env = {
        **os.environ,
        **config["job_env"],
        "RANK": str(context.get_world_rank()),
        "WORLD_SIZE": str(context.get_world_size()),
        "LOCAL_RANK": str(context.get_local_rank()),
        "NODE_RANK": str(context.get_node_rank()),
        "NPROC_PER_NODE": str(context.get_local_world_size()),
    }
    environment = JobEnvironment.from_env(env)
    logs.configure(environment.namespace, environment.name, environment.topology.rank)
    logs.archive(environment.output_uri, environment.topology.rank)
    try:
        report = job.train(environment, rfc3339())
    finally:
        logs.close_archive()
    if report is not None:
        ray.get(config["box"].put.remote(report))


def failure_report(error: BaseException) -> str:
    """The known cause (a TrainerFailure raised by a worker, e.g. Diverged) when there is one,
    so the operator sees the same reason as on the PyTorch path; else TrainerError."""
    cause = _trainer_failure(error)
    if cause is not None:
        return termination.report("Failed", cause.reason, cause.message)
    first_line = next((line for line in str(error).splitlines() if line.strip()), type(error).__name__)
    return termination.report("Failed", "TrainerError", f"{type(error).__name__}: {first_line}")


def _trainer_failure(error: BaseException | None) -> TrainerFailure | None:
    seen: set[int] = set()
    pending: list[BaseException | None] = [error]
    while pending:
        current = pending.pop(0)
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, TrainerFailure):
            return current
        failures = getattr(current, "worker_failures", None) or {}
        pending += [failures[rank] for rank in sorted(failures)]
        pending += [getattr(current, "controller_failure", None), getattr(current, "cause", None), current.__cause__]
    return None


def run(env: JobEnvironment, scaling: RayScaling) -> str:
    """Trains on the Ray cluster and returns the final report; raises what training raised."""
    parse_task(env.task_json)  # a bad spec.task fails here, before any Ray worker starts
    env.require_uris()
    ray.init(address=scaling.address, logging_level=logging.WARNING, log_to_driver=True)
    try:
        box = ReportBox.remote()  # type: ignore[attr-defined]
        job_env = {name: os.environ[name] for name in JOB_ENV_NAMES if name in os.environ}
        trainer = TorchTrainer(
            train_worker,
            train_loop_config={"job_env": job_env, "box": box},
            scaling_config=scaling.scaling_config(),
            run_config=RunConfig(
                name=f"{env.namespace}-{env.name}-{env.attempt}",
                storage_path=os.path.join(tempfile.gettempdir(), "kubetrain-ray-results"),
                failure_config=FailureConfig(max_failures=scaling.max_failures),
            ),
        )
        trainer.fit()
        report = ray.get(box.get.remote())
    finally:
        ray.shutdown()
    if report is None:
        raise TrainerFailure("TrainerError", "Ray Train finished but rank 0 sent no final report")
    return report


def main() -> int:
    try:
        env = JobEnvironment.from_env()
        scaling = RayScaling.from_env(os.environ)
    except TrainerFailure as failure:
        path = os.environ.get("KUBETRAIN_TERMINATION_MESSAGE_PATH", "/dev/termination-log")
        termination.write(path, termination.report("Failed", failure.reason, failure.message))
        return 1
    logs.configure(env.namespace, env.name, -1)
    try:
        report, code = run(env, scaling), 0
    except Exception as error:  # every way training ends becomes the head's final report
        logs.error("failed", exc_info=True, reason="TrainerError")
        report, code = failure_report(error), 1
    termination.write(env.termination_message_path, report)
    logs.info("exiting", exit_code=code)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
