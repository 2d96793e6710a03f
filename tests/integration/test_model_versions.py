"""Promotion gates, ModelVersions and Models on the real control plane: KWOK workers end with a
trainer report carrying the metrics, the operator judges the gates, records versions and
resolves which one is promoted; users roll back by pinning a version in the Model's spec."""

from __future__ import annotations

import copy
from typing import Any

import kubernetes
import pytest

from kubetrain.devcluster.cluster import LocalCluster
from tests.builders import example
from tests.helpers import wait_for
from tests.jobs import Jobs
from tests.operator_process import OperatorProcess
from tests.registry import Registry, finish

pytestmark = pytest.mark.cluster

GOOD = {"f1": 0.95, "loss": 0.2, "accuracy": 0.95}
DIGEST = "sha256:" + "ab" * 32


@pytest.fixture
def jobs(api: kubernetes.client.ApiClient, namespace: str, operator: OperatorProcess) -> Jobs:
    return Jobs(api, namespace)


@pytest.fixture
def registry(api: kubernetes.client.ApiClient, namespace: str) -> Registry:
    return Registry(api, namespace)


def gated(name: str) -> dict[str, Any]:
    manifest = copy.deepcopy(example("model-fraud-gated.yaml"))
    manifest["metadata"]["name"] = name
    manifest["spec"]["workers"] = 1
    return manifest


def run(jobs: Jobs, name: str, metrics: dict[str, float], **provenance: str) -> str:
    jobs.create(gated(name))
    finish(jobs, name, metrics, **provenance)
    return name


def test_passing_run_is_recorded_and_promoted_and_outlives_its_job(
    jobs: Jobs, registry: Registry, cluster: LocalCluster, namespace: str
) -> None:
    name = run(jobs, "fraud-1", GOOD, datasetDigest=DIGEST, weightsDigest="sha256:" + "cd" * 32)
    promoted = jobs.wait_condition(name, "Promoted")
    assert promoted["status"] == "True" and promoted["reason"] == "Promoted", promoted
    assert "fraud-v1" in promoted["message"] and "f1 0.95 >= 0.9" in promoted["message"]
    assert jobs.status(name)["modelVersion"] == "fraud-v1"

    version = registry.version("fraud-v1")
    assert version is not None
    labels = version["metadata"]["labels"]
    assert labels["kubetrain.io/model"] == "fraud"
    assert labels["kubetrain.io/dataset-digest"] == "ab" * 16
    assert not version["metadata"].get("ownerReferences")
    assert version["spec"]["metrics"] == GOOD
    assert version["spec"]["sourceJob"]["name"] == name
    assert version["spec"]["provenance"]["datasetDigest"] == DIGEST

    status = registry.wait_promoted("fraud", "fraud-v1")
    assert status["latestVersion"] == "fraud-v1" and status["promotedMetrics"] == GOOD
    listing = cluster.kubectl("get", "modelversions", "-n", namespace, "-l", "kubetrain.io/model=fraud").stdout
    assert "fraud-v1" in listing and "0.95" in listing, listing
    jobs.wait_events(name, "Promoted")

    jobs.delete(name)
    wait_for(lambda: not jobs.exists(name), timeout=30, what="job deleted")
    assert registry.version("fraud-v1") is not None


def test_failing_gate_fails_promotion_not_the_job(jobs: Jobs, registry: Registry) -> None:
    name = run(jobs, "fraud-weak", {"f1": 0.85, "loss": 0.2})
    promoted = jobs.wait_condition(name, "Promoted")
    assert promoted["status"] == "False" and promoted["reason"] == "GateFailed", promoted
    assert "f1 0.85 >= 0.9" in promoted["message"], promoted["message"]
    assert jobs.status(name)["phase"] == "Succeeded"
    assert registry.versions("kubetrain.io/model=fraud") == []
    assert registry.model("fraud") is None
    jobs.wait_events(name, "GateFailed")


def test_regression_against_the_promoted_version_is_refused(jobs: Jobs, registry: Registry) -> None:
    run(jobs, "fraud-a", {"f1": 0.96, "loss": 0.2})
    registry.wait_promoted("fraud", "fraud-v1")

    worse = run(jobs, "fraud-b", {"f1": 0.93, "loss": 0.2})  # above 0.90, but 0.03 below v1
    refused = jobs.wait_condition(worse, "Promoted")
    assert refused["reason"] == "GateFailed", refused
    assert "promoted fraud-v1 0.96" in refused["message"] and "maxRegression 0.02" in refused["message"]

    close = run(jobs, "fraud-c", {"f1": 0.95, "loss": 0.2})  # within 0.02 of v1
    assert jobs.wait_condition(close, "Promoted")["status"] == "True"
    registry.wait_promoted("fraud", "fraud-v2")
    assert [v["metadata"]["name"] for v in registry.versions("kubetrain.io/model=fraud")] == ["fraud-v1", "fraud-v2"]


def test_declarative_rollback_by_pinning_a_version(jobs: Jobs, registry: Registry) -> None:
    run(jobs, "fraud-1", GOOD)
    registry.wait_promoted("fraud", "fraud-v1")
    run(jobs, "fraud-2", GOOD)
    registry.wait_promoted("fraud", "fraud-v2")

    registry.patch_model("fraud", {"promotedVersion": "fraud-v1"})
    status = registry.wait_promoted("fraud", "fraud-v1")
    resolved = next(c for c in status["conditions"] if c["type"] == "Resolved")
    assert resolved["reason"] == "Pinned" and status["latestVersion"] == "fraud-v2"

    newer = run(jobs, "fraud-3", GOOD)
    pinned = jobs.wait_condition(newer, "Promoted")
    assert pinned["status"] == "False" and pinned["reason"] == "VersionPinned", pinned
    assert registry.version("fraud-v3") is not None
    assert registry.model("fraud")["status"]["promotedVersion"] == "fraud-v1"  # type: ignore[index]

    registry.patch_model("fraud", {"promotedVersion": "fraud-v9"})

    def pin_refused() -> bool:
        conditions = (registry.model("fraud") or {}).get("status", {}).get("conditions", [])
        return any(c["type"] == "Resolved" and c["reason"] == "PinNotFound" for c in conditions)

    wait_for(pin_refused, timeout=30, what="PinNotFound")
    assert registry.model("fraud")["status"]["promotedVersion"] == "fraud-v1"  # type: ignore[index]

    registry.patch_model("fraud", {"promotedVersion": None})
    registry.wait_promoted("fraud", "fraud-v3")
