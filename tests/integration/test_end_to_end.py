"""The main job for real: `kubectl apply` a TrainingJob, the operator launches two DDP workers on
the executing local node, they train on a generated data set, and the job reaches Succeeded with
the held-out metrics in its status and in `kubectl get tj`, and its last checkpoint in
status.lastCheckpoint."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import kubernetes
import pytest

from kubetrain.devcluster.cluster import LocalCluster
from tests.local_training import (
    ACCURACY_BAR,
    HELD_OUT_METRICS,
    assert_ranks_trained_in_sync,
    train_example_to_success,
)
from tests.operator_process import OperatorProcess

pytestmark = [pytest.mark.cluster, pytest.mark.training]


def test_example_trains_to_success_with_metrics_in_status(
    cluster: LocalCluster, api: kubernetes.client.ApiClient, namespace: str, operator: OperatorProcess,
    tmp_path: Path,
) -> None:
    _, name, status = train_example_to_success(
        "pytorch-ddp-local.yaml", cluster, api, namespace, operator, tmp_path
    )

    metrics = status["metrics"]
    assert metrics["accuracy"] >= ACCURACY_BAR, metrics
    assert HELD_OUT_METRICS <= set(metrics)
    assert status["progress"]["percent"] == pytest.approx(100.0)
    assert status["restarts"] == 0
    # The final step always saves a checkpoint; status names it with the digest of its bytes.
    checkpoint, step = status["lastCheckpoint"], status["progress"]["step"]
    saved = tmp_path / "output" / "checkpoints" / f"step-{step}.pt"
    assert (checkpoint["step"], checkpoint["uri"]) == (step, f"file://{saved}"), checkpoint
    assert checkpoint["digest"] == "sha256:" + hashlib.sha256(saved.read_bytes()).hexdigest()
    assert checkpoint["time"] <= status["provenance"]["completionTime"], (checkpoint, status["provenance"])

    card = json.loads((tmp_path / "output" / "model-card.json").read_text())
    assert card["metrics"]["accuracy"] == pytest.approx(metrics["accuracy"])
    assert (tmp_path / "output" / "model.safetensors").exists()
    assert_ranks_trained_in_sync(tmp_path / "output", world_size=2)

    listing = cluster.kubectl("get", "tj", name, "-n", namespace).stdout
    assert "Succeeded" in listing
    assert f"{metrics['accuracy']:.4g}"[:4] in listing, listing
