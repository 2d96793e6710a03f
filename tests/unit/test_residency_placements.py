"""Residency judged where the pods are: a pod scheduled before its namespace came under a policy
(or before the policy narrowed its regions) breaks it by running in another region, whatever its
spec says; and the planner then stops the job. Pods that run nowhere (finished, or on a node that
is gone) are not judged, and a node's region is read again after a TTL."""

from __future__ import annotations

import time
from typing import Any

import pytest

from kubetrain.api import TrainingJob, default_catalogue
from kubetrain.api.nodepools import REGION_LABEL
from kubetrain.controller.residency import NODE_REGION_TTL_SECONDS, ResidencyReader
from kubetrain.controller.shared_reads import SharedReads
from kubetrain.policy.residency import DefaultResidency, ResidencyFacts, evaluate
from kubetrain.policy.residency.evaluate import PodPlacement
from tests.builders import JobBuilder
from tests.residency_cases import POLICY_NAME, eu_policy

CATALOGUE = default_catalogue()
JOB = TrainingJob.model_validate(JobBuilder.eu("placed", "team-eu").merge(nodePool="cpu", resources={
    "cpu": "100m", "memory": "64Mi", "gpus": 0}).manifest())


def facts(*placements: PodPlacement, enforcement: str = "Enforce") -> ResidencyFacts:
    return ResidencyFacts(namespace="team-eu", policies=[eu_policy(POLICY_NAME, ["team-eu"], enforcement)],
                          placements=list(placements))


def test_a_pod_running_outside_the_allowed_regions_breaks_the_policy() -> None:
    verdict = evaluate(JOB, facts(PodPlacement(pod="placed-worker-0", node="cpu-us-0", region="us-east-1")), CATALOGUE)
    [violation] = verdict.blocking
    assert violation.rule == "spec.allowedRegions" and violation.field == "pod placed-worker-0"
    assert violation.value == "node cpu-us-0" and "runs in region us-east-1" in violation.reason
    assert violation.allowed == ["eu-west-1"]


def test_a_pod_on_a_node_without_a_region_label_breaks_it_too() -> None:
    verdict = evaluate(JOB, facts(PodPlacement(pod="placed-worker-0", node="unlabelled")), CATALOGUE)
    assert "the node has no region label" in verdict.blocking[0].reason


def test_pods_in_the_allowed_region_comply_and_audit_only_records() -> None:
    inside = PodPlacement(pod="placed-worker-0", node="cpu-eu-0", region="eu-west-1")
    assert evaluate(JOB, facts(inside), CATALOGUE).violations == []
    outside = PodPlacement(pod="placed-worker-1", node="cpu-us-0", region="us-east-1")
    audited = evaluate(JOB, facts(inside, outside, enforcement="Audit"), CATALOGUE)
    assert not audited.blocking and [v.field for v in audited.audited] == ["pod placed-worker-1"]


class Nodes:
    """The Kube calls ResidencyReader makes, over a fixed set of nodes; counts node reads."""

    def __init__(self, nodes: dict[str, dict[str, str]]) -> None:
        self.nodes = nodes
        self.reads = 0

    def node_labels(self, node: str) -> dict[str, str] | None:
        self.reads += 1
        return self.nodes.get(node)

    def namespace_labels(self, namespace: str) -> dict[str, str]:
        return {}

    def list_policies(self) -> list[dict[str, Any]]:
        return [eu_policy(POLICY_NAME, ["team-eu"], "Enforce")]


def pod(name: str, node: str, phase: str = "Running") -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": {"nodeName": node}, "status": {"phase": phase}}


EU, US = {REGION_LABEL: "eu-west-1"}, {REGION_LABEL: "us-east-1"}


def test_pods_on_a_vanished_node_and_finished_pods_are_not_judged() -> None:
    """A reclaimed spot node (404) or a pod that already finished on a us node is no violation."""
    reader = ResidencyReader(Nodes({"eu-0": EU, "us-0": US}), DefaultResidency.ALLOW_ALL, SharedReads())  # type: ignore[arg-type]
    pods = [pod("placed-worker-0", "eu-0"), pod("placed-worker-1", "reclaimed"),
            pod("placed-worker-2", "us-0", "Succeeded")]
    facts_ = reader.facts(JOB, "team-eu", fresh=True, began=time.monotonic(), pods=pods)
    assert [p.pod for p in facts_.placements] == ["placed-worker-0"]
    assert evaluate(JOB, facts_, CATALOGUE).violations == []


def test_a_node_that_exists_without_a_region_label_is_refused() -> None:
    reader = ResidencyReader(Nodes({"bare": {}}), DefaultResidency.ALLOW_ALL, SharedReads())  # type: ignore[arg-type]
    facts_ = reader.facts(JOB, "team-eu", fresh=True, began=time.monotonic(), pods=[pod("placed-worker-0", "bare")])
    assert "no region label" in evaluate(JOB, facts_, CATALOGUE).blocking[0].reason


def test_a_nodes_region_is_read_again_after_its_ttl(monkeypatch: pytest.MonkeyPatch) -> None:
    nodes = Nodes({"n-0": EU})
    reader = ResidencyReader(nodes, DefaultResidency.ALLOW_ALL, SharedReads())  # type: ignore[arg-type]
    clock = [1000.0]
    monkeypatch.setattr("kubetrain.controller.residency.time.monotonic", lambda: clock[0])
    pods = [pod("placed-worker-0", "n-0")]
    reader.facts(JOB, "team-eu", fresh=True, began=time.monotonic(), pods=pods)
    reader.facts(JOB, "team-eu", fresh=True, began=time.monotonic(), pods=pods)
    assert nodes.reads == 1
    nodes.nodes["n-0"] = US  # the name came back as a node in another region
    clock[0] += NODE_REGION_TTL_SECONDS + 1
    facts_ = reader.facts(JOB, "team-eu", fresh=True, began=time.monotonic(), pods=pods)
    assert nodes.reads == 2 and facts_.placements[0].region == "us-east-1"
