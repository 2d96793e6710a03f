"""Ray for real on the executing local node: the operator creates the Ray head and two Ray worker
pods, which run as local processes (`ray start` on 127.0.0.1), the head's driver trains with Ray
Train on a generated data set, and the job reaches Succeeded with the metrics in its status."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from kubetrain.devcluster.cluster import LocalCluster
from tests.jobs import Jobs, example
from tests.operator_process import OperatorProcess

pytestmark = [pytest.mark.cluster, pytest.mark.training]

ACCURACY_BAR = 0.80  # the PyTorch end-to-end bar (test_end_to_end.py), same task and data


def test_ray_example_trains_to_success_with_metrics_in_status(
    cluster: LocalCluster, api: object, namespace: str, operator: OperatorProcess, tmp_path: Path
) -> None:
    data = tmp_path / "tabular.csv"
    subprocess.run(
        [sys.executable, "-m", "kubetrain_trainer.datagen", "tabular", "--out", str(data), "--rows", "2000", "--seed", "0"],
        check=True,
    )
    manifest = example("ray-train-local.yaml")
    manifest["spec"]["dataset"]["uri"] = f"file://{data}"
    manifest["spec"]["output"]["uri"] = f"file://{tmp_path / 'output'}"
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(manifest))

    jobs = Jobs(api, namespace)  # type: ignore[arg-type]
    name = manifest["metadata"]["name"]
    try:
        status = jobs.wait_phase(name, "Succeeded", timeout=480)
    except AssertionError:
        pytest.fail(f"job did not succeed; operator log:\n{operator.log_tail()}\nstatus: {jobs.status(name)}")

    pods = {p.metadata.labels["kubetrain.io/role"] + p.metadata.labels["kubetrain.io/replica-index"]: p
            for p in jobs.pods(name, include_terminating=True)}
    assert pods["head0"].spec.node_name == "local-0"
    metrics = status["metrics"]
    assert metrics["accuracy"] >= ACCURACY_BAR, metrics
    assert {"loss", "accuracy", "precision", "recall", "f1"} <= set(metrics)
    assert status["progress"]["percent"] == pytest.approx(100.0), "rank 0 on a Ray worker reported progress"
    assert status["restarts"] == 0
    assert (tmp_path / "output" / "model.safetensors").exists()
