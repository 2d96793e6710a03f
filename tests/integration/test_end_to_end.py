"""The main job for real: `kubectl apply` a TrainingJob, the operator launches two DDP workers on
the executing local node, they train on a generated data set, and the job reaches Succeeded with
the held-out metrics in its status and in `kubectl get tj`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from kubetrain.devcluster.cluster import LocalCluster
from tests.jobs import Jobs, example
from tests.operator_process import OperatorProcess

pytestmark = [pytest.mark.cluster, pytest.mark.training]

ACCURACY_BAR = 0.80


def test_example_trains_to_success_with_metrics_in_status(
    cluster: LocalCluster, api: object, namespace: str, operator: OperatorProcess, tmp_path: Path
) -> None:
    data = tmp_path / "tabular.csv"
    subprocess.run(
        [sys.executable, "-m", "kubetrain_trainer.datagen", "tabular", "--out", str(data), "--rows", "2000", "--seed", "0"],
        check=True,
    )
    manifest = example("pytorch-ddp-local.yaml")
    manifest["spec"]["dataset"]["uri"] = f"file://{data}"
    manifest["spec"]["output"]["uri"] = f"file://{tmp_path / 'output'}"
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(manifest))

    jobs = Jobs(api, namespace)  # type: ignore[arg-type]
    name = manifest["metadata"]["name"]
    try:
        status = jobs.wait_phase(name, "Succeeded", timeout=420)
    except AssertionError:
        pytest.fail(f"job did not succeed; operator log:\n{operator.log_tail()}\nstatus: {jobs.status(name)}")

    metrics = status["metrics"]
    assert metrics["accuracy"] >= ACCURACY_BAR, metrics
    assert {"loss", "accuracy", "precision", "recall", "f1"} <= set(metrics)
    assert status["progress"]["percent"] == pytest.approx(100.0)
    assert status["restarts"] == 0

    card = json.loads((tmp_path / "output" / "model-card.json").read_text())
    assert card["metrics"]["accuracy"] == pytest.approx(metrics["accuracy"])
    assert (tmp_path / "output" / "model.safetensors").exists()

    listing = cluster.kubectl("get", "tj", name, "-n", namespace).stdout
    assert "Succeeded" in listing
    assert f"{metrics['accuracy']:.4g}"[:4] in listing, listing
