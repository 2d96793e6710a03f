"""Ray for real on the executing local node: the operator creates the Ray head and two Ray worker
pods, which run as local processes (`ray start` on 127.0.0.1), the head's driver trains with Ray
Train on a generated data set, and the job reaches Succeeded with the metrics in its status."""

from __future__ import annotations

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


def test_ray_example_trains_to_success_with_metrics_in_status(
    cluster: LocalCluster, api: kubernetes.client.ApiClient, namespace: str, operator: OperatorProcess,
    tmp_path: Path,
) -> None:
    jobs, name, status = train_example_to_success(
        "ray-train-local.yaml", cluster, api, namespace, operator, tmp_path
    )

    pods = {p.metadata.labels["kubetrain.io/role"] + p.metadata.labels["kubetrain.io/replica-index"]: p
            for p in jobs.pods(name, include_terminating=True)}
    assert pods["head0"].spec.node_name == "local-0"
    metrics = status["metrics"]
    assert metrics["accuracy"] >= ACCURACY_BAR, metrics
    assert HELD_OUT_METRICS <= set(metrics)
    assert status["progress"]["percent"] == pytest.approx(100.0), "rank 0 on a Ray worker reported progress"
    assert status["restarts"] == 0
    assert (tmp_path / "output" / "model.safetensors").exists()
    assert_ranks_trained_in_sync(tmp_path / "output", world_size=2)
