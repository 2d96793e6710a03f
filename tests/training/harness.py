"""Runs the trainer the way the operator does: one `python -m kubetrain_trainer` process per pod,
with exactly the pod environment of docs/contracts.md (loopback rendezvous, as on the local node)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubetrain.api.contract import ATTEMPT_LABEL, REPLICA_INDEX_LABEL
from kubetrain.api.job import TrainingJob
from kubetrain.devcluster.localnode.launch import plan_launch
from kubetrain.render.env import worker_env
from tests.helpers import wait_for

# Variables a developer's shell (or an enclosing pod) might carry that would change what the
# trainer under test does.
_SCRUBBED_PREFIXES = ("KUBETRAIN_", "PET_", "KUBERNETES_SERVICE_")
_SCRUBBED = {"MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE", "RANK", "LOCAL_RANK", "NODE_RANK", "NNODES", "NPROC_PER_NODE"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Pod:
    index: int
    process: subprocess.Popen[bytes]
    directory: Path

    @property
    def termination_path(self) -> Path:
        return self.directory / "termination-log"

    @property
    def log_path(self) -> Path:
        return self.directory / "trainer.log"

    def report(self) -> dict[str, Any] | None:
        text = self.termination_path.read_text() if self.termination_path.exists() else ""
        return json.loads(text) if text else None

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        lines = []
        for line in self.log_path.read_text().splitlines():
            if line.startswith("{"):
                record = json.loads(line)
                if name is None or record.get("event") == name:
                    lines.append(record)
        return lines


def _clean_environ() -> dict[str, str]:
    """This process's environment without what would change the trainer under test."""
    return {k: v for k, v in os.environ.items() if k not in _SCRUBBED and not k.startswith(_SCRUBBED_PREFIXES)}


def _spawn(index: int, argv: list[str], env: dict[str, str], directory: Path) -> Pod:
    """One pod's process, its output in the pod's trainer.log."""
    with open(directory / "trainer.log", "wb") as log:
        process = subprocess.Popen(argv, env=env, cwd=directory, stdout=log, stderr=subprocess.STDOUT)
    return Pod(index, process, directory)


def pod_env(
    *, index: int, workers: int, nproc: int, port: int, task: dict[str, Any], dataset: str, output: str,
    termination_path: Path, attempt: int, job: str,
) -> dict[str, str]:
    base = _clean_environ()
    rendezvous = {
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(port),
        "WORLD_SIZE": str(workers * nproc),
        "NNODES": str(workers),
        "NODE_RANK": str(index),
        "RANK": str(index * nproc),
        "NPROC_PER_NODE": str(nproc),
    }
    return {
        **base,
        **rendezvous,
        **{f"PET_{k}": rendezvous[k] for k in ("NNODES", "NPROC_PER_NODE", "NODE_RANK", "MASTER_ADDR", "MASTER_PORT")},
        "KUBETRAIN_JOB_NAME": job,
        "KUBETRAIN_JOB_NAMESPACE": "training-tests",
        "KUBETRAIN_JOB_UID": f"uid-{job}",
        "KUBETRAIN_ATTEMPT": str(attempt),
        "KUBETRAIN_TASK": json.dumps(task),
        "KUBETRAIN_DATASET_URI": dataset,
        "KUBETRAIN_OUTPUT_URI": output,
        "KUBETRAIN_TERMINATION_MESSAGE_PATH": str(termination_path),
        "OMP_NUM_THREADS": "1",  # two cores shared by all pods of a test
        "PYTHONUNBUFFERED": "1",
    }


def start(
    workdir: Path, task: dict[str, Any], dataset: str, output: str, *, workers: int = 1, nproc: int = 1,
    attempt: int = 0, job: str = "job",
) -> list[Pod]:
    """Starts one process per pod; each pod gets its own directory for its log and termination
    message, as each real pod has its own."""
    port = free_port()
    pods = []
    for index in range(workers):
        directory = workdir / f"attempt-{attempt}" / f"worker-{index}"
        directory.mkdir(parents=True)
        env = pod_env(
            index=index, workers=workers, nproc=nproc, port=port, task=task, dataset=dataset, output=output,
            termination_path=directory / "termination-log", attempt=attempt, job=job,
        )
        pods.append(_spawn(index, [sys.executable, "-m", "kubetrain_trainer"], env, directory))
    return pods


def wait(pods: list[Pod], timeout: float = 120.0) -> list[int]:
    """Exit codes of all pods; kills them all and fails if any outlives the timeout."""
    deadline = time.monotonic() + timeout
    try:
        return [pod.process.wait(timeout=max(deadline - time.monotonic(), 0.1)) for pod in pods]
    except subprocess.TimeoutExpired:
        for pod in pods:
            pod.process.kill()
        logs = "\n".join(pod.log_path.read_text()[-2000:] for pod in pods)
        raise AssertionError(f"trainer did not finish within {timeout}s:\n{logs}") from None


def run(
    workdir: Path, task: dict[str, Any], dataset: str, output: str, timeout: float = 120.0, **kwargs: Any
) -> list[Pod]:
    pods = start(workdir, task, dataset, output, **kwargs)
    wait(pods, timeout)
    return pods


def describe(pods: list[Pod]) -> str:
    """The pods' log tails, for assertion messages."""
    return "\n".join(
        f"--- worker-{p.index} (exit {p.process.returncode})\n{p.log_path.read_text()[-3000:]}" for p in pods
    )


def wait_for_checkpoint(output: Path, at_least_step: int, timeout: float = 90.0) -> int:
    latest = output / "checkpoints" / "latest"

    def step() -> int:
        if not latest.exists():
            return 0
        name = latest.read_text().strip()
        value = int(name.removeprefix("step-").removesuffix(".pt"))
        return value if value >= at_least_step else 0

    return wait_for(step, timeout=timeout, what=f"a checkpoint at step >= {at_least_step}")


def start_elastic(
    workdir: Path, task: dict[str, Any], dataset: str, output: str, *, workers: int, min_workers: int,
    job: str = "elastic",
) -> list[Pod]:
    """Starts the pods of a spec.elastic job as the local node starts them: each pod's env is the
    one the operator renders (render.env.worker_env), rewritten for the loopback by the local
    node's own launch plan; the trainer then runs torchrun's agent in every pod."""
    spec = {
        "task": task, "workers": workers, "elastic": {"minWorkers": min_workers},
        "dataset": {"uri": dataset}, "output": {"uri": output},
    }
    model = TrainingJob.model_validate(
        {"metadata": {"name": job, "namespace": "training-tests", "uid": f"uid-{job}"}, "spec": spec}
    )
    base = _clean_environ()
    pods = []
    for index in range(workers):
        directory = workdir / f"worker-{index}"
        directory.mkdir(parents=True)
        pod = {
            "metadata": {
                "name": f"{job}-worker-{index}", "namespace": "training-tests",
                "labels": {REPLICA_INDEX_LABEL: str(index), ATTEMPT_LABEL: "0"},
                "ownerReferences": [{"uid": model.metadata.uid, "controller": True}],
            },
            "spec": {"containers": [{"name": "trainer", "env": worker_env(model, index, 0, "trainer:test")}]},
        }
        launch = plan_launch(pod, directory, "127.0.0.1", 1, None)
        env = {k: v for k, v in launch.env.items() if not k.startswith("KUBERNETES_SERVICE_")}
        pods.append(_spawn(index, launch.argv, {**base, **env, "OMP_NUM_THREADS": "1"}, directory))
    return pods
