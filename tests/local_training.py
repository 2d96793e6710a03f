"""Running an example on the executing local node to completion, for the end-to-end tests of
each runtime: the same generated data set, so the same accuracy bar holds for every runtime."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import yaml

from kubetrain.devcluster.cluster import LocalCluster
from tests.builders import example
from tests.jobs import Jobs
from tests.operator_process import OperatorProcess

ACCURACY_BAR = 0.80
HELD_OUT_METRICS = {"loss", "accuracy", "precision", "recall", "f1"}
# The longest a healthy run goes without a status change or a line of pod output: a cold import
# of torch or Ray on a loaded 2-core machine.
STALL_SECONDS = 120.0
CEILING_SECONDS = 900.0


def train_example_to_success(
    example_name: str, cluster: LocalCluster, api: kubernetes.client.ApiClient, namespace: str,
    operator: OperatorProcess, work: Path,
) -> tuple[Jobs, str, dict[str, Any]]:
    """Applies the example with `kubectl apply`, on a generated tabular data set and with its
    output under `work`; returns the jobs client, the job's name and its final status."""
    data = work / "tabular.csv"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "kubetrain_trainer.datagen",
            "tabular",
            "--out",
            str(data),
            "--rows",
            "2000",
            "--seed",
            "0",
        ],
        check=True,
    )
    manifest = example(example_name)
    manifest["spec"]["dataset"]["uri"] = f"file://{data}"
    manifest["spec"]["output"]["uri"] = f"file://{work / 'output'}"
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(manifest))
    jobs = Jobs(api, namespace)
    name = manifest["metadata"]["name"]
    try:
        status = wait_succeeded_while_alive(jobs, name, cluster.state_dir / "localnode" / "pods")
    except AssertionError as exc:
        pytest.fail(f"job did not succeed: {exc}; operator log:\n{operator.log_tail()}\nstatus: {jobs.status(name)}")
    return jobs, name, status


def _signs_of_life(status: dict[str, Any], jobs: Jobs, name: str, pod_logs: Path) -> str:
    """The job's status (phase, pods, progress) and the sizes of its pods' output on the node."""
    sizes = sorted((log.parent.name, log.stat().st_size) for log in pod_logs.glob(f"{jobs.ns}_{name}-*/output.log"))
    return json.dumps([status, sizes], sort_keys=True, default=str)


def wait_succeeded_while_alive(jobs: Jobs, name: str, pod_logs: Path, stall: float = STALL_SECONDS) -> dict[str, Any]:
    """The status once Succeeded. No fixed allowance sized for the slowest healthy run: a run is
    waited for as long as it shows life (status or pod output changing within `stall` seconds),
    so a hang fails in `stall` seconds however slow the machine, and a Failed job at once. The
    ceiling only stops a run that stays busy forever (a livelock)."""
    last, changed = "", time.monotonic()
    ceiling = changed + CEILING_SECONDS
    while time.monotonic() < ceiling:
        status = jobs.status(name)
        if status.get("phase") in ("Succeeded", "Failed"):
            assert status["phase"] == "Succeeded", "the job failed"
            return status
        sign = _signs_of_life(status, jobs, name, pod_logs)
        if sign != last:
            last, changed = sign, time.monotonic()
        elif time.monotonic() - changed > stall:
            raise AssertionError(f"no sign of life for {stall:.0f}s (status and pod output unchanged)")
        time.sleep(1)
    raise AssertionError(f"still busy after {CEILING_SECONDS:.0f}s without finishing")


def assert_ranks_trained_in_sync(output: Path, world_size: int) -> None:
    """Rank 0 alone produces the metrics, so only the model card's per-rank parameter digests show
    that the ranks trained one model together (DDP) rather than each its own."""
    card = json.loads((output / "model-card.json").read_text())
    digests = card["training"]["parameterDigests"]
    assert len(digests) == card["training"]["worldSize"] == world_size, card["training"]
    assert len(set(digests)) == 1, f"the ranks' parameters differ after training: {digests}"
