"""The residency verdict in plan() and placement: Enforce stops the job with no pod left, Audit
runs it and warns once, compliant pods are pinned to the allowed regions."""

from __future__ import annotations

from typing import Any

import pytest

from kubetrain.api import TrainingJob
from kubetrain.api.residency import Enforcement
from kubetrain.plan import Plan, plan
from kubetrain.policy.residency import ResidencyVerdict, Violation
from kubetrain.render.errors import InvalidSpec
from kubetrain.render.placement import place
from kubetrain.render.podtemplate import merge_pod_spec
from tests.unit.test_plan_rules import (
    CATALOGUE,
    DDP,
    NOW,
    SETTINGS,
    children,
    condition,
    observe,
    raw_pod,
    running_status,
)
from tests.unit.test_render_placement import region_of, spec

REGION = "topology.kubernetes.io/region"


def violation(enforcement: Enforcement) -> Violation:
    return Violation(policy="eu-only", rule="spec.allowedData", field="spec.dataset.uri",
                     value="s3://us/x", allowed=["s3://eu-*/**"], enforcement=enforcement)


def run(job: TrainingJob, verdict: ResidencyVerdict, *pods: dict[str, Any]) -> Plan:
    return plan(job, observe(*pods), children(job, verdict.regions), CATALOGUE, SETTINGS, NOW, verdict)


def pod_regions(result: Plan) -> list[list[str] | None]:
    return [region_of(o["spec"].get("affinity")) for o in result.create if o["kind"] == "Pod"]


@pytest.mark.parametrize(
    ("pool", "allowed", "expected"),
    [
        ("cpu", None, None),
        ("cpu", ["eu-west-1"], ["eu-west-1"]),
        ("cpu", ["us-east-1", "eu-west-1"], ["eu-west-1", "us-east-1"]),
        ("a100-eu", ["eu-west-1", "us-east-1"], ["eu-west-1"]),
        ("a100-eu", None, ["eu-west-1"]),
        (None, ["eu-west-1"], ["eu-west-1"]),
    ],
)
def test_region_affinity_is_the_pool_region_intersected_with_the_policies(
    pool: str | None, allowed: list[str] | None, expected: list[str] | None
) -> None:
    assert region_of(place(spec(pool), CATALOGUE, allowed).affinity) == expected


def test_a_pool_outside_the_allowed_regions_is_never_rendered() -> None:
    with pytest.raises(InvalidSpec, match="regions the namespace's residency policies allow"):
        place(spec("h100-us"), CATALOGUE, ["eu-west-1"])


def test_user_affinity_can_only_narrow_the_region() -> None:
    user = {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": REGION, "operator": "In", "values": ["us-east-1"]}]},
        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["cpu-us"]}]},
    ]}}}}
    owned = {"affinity": place(spec("cpu"), CATALOGUE, ["eu-west-1"]).affinity}
    terms = merge_pod_spec(user, owned)["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"]
    # Terms are ORed by the scheduler: every one carries the residency expression.
    ours = {"key": REGION, "operator": "In", "values": ["eu-west-1"]}
    assert len(terms) == 2 and all(ours in term["matchExpressions"] for term in terms)


def test_enforced_violation_fails_a_pending_job_before_any_pod() -> None:
    result = run(DDP.obj(), ResidencyVerdict(policies=["eu-only"], violations=[violation(Enforcement.ENFORCE)]))
    assert result.create == []
    assert condition(result, "Failed")["reason"] == "ResidencyViolation"
    residency = condition(result, "ResidencyCompliant")
    assert (residency["status"], residency["reason"]) == ("False", "ResidencyViolation")
    assert "spec.dataset.uri: 's3://us/x' breaks DataResidencyPolicy eu-only spec.allowedData" in residency["message"]
    assert result.status.phase == "Failed"
    assert [(e.type, e.reason) for e in result.events] == [("Warning", "ResidencyViolation"), ("Warning", "Failed")]


def test_enforced_violation_stops_a_running_job_and_deletes_its_pods() -> None:
    job = DDP.status(running_status()).obj()
    result = run(job, ResidencyVerdict(policies=["eu-only"], violations=[violation(Enforcement.ENFORCE)]),
                 raw_pod(0), raw_pod(1))
    assert sorted(result.delete_pods) == ["pytorch-ddp-worker-0", "pytorch-ddp-worker-1"]
    assert result.create == [] and result.status.phase == "Failed"
    assert condition(result, "Running")["status"] == "False"


def test_audited_violation_runs_and_warns_once() -> None:
    verdict = ResidencyVerdict(policies=["eu-only"], violations=[violation(Enforcement.AUDIT)])
    first = run(DDP.obj(), verdict)
    assert len(pod_regions(first)) == 2
    residency = condition(first, "ResidencyCompliant")
    assert (residency["status"], residency["reason"]) == ("False", "ResidencyViolationAudited")
    assert ("Warning", "ResidencyViolationAudited") in [(e.type, e.reason) for e in first.events]
    again = run(DDP.status(first.status.to_k8s()).obj(), verdict)
    assert all(e.reason != "ResidencyViolationAudited" for e in again.events)


def test_compliant_job_gets_its_pods_pinned_to_the_allowed_regions() -> None:
    job = DDP.spec(nodePool="cpu", resources={"cpu": "1", "gpus": 0}).obj()
    result = run(job, ResidencyVerdict(policies=["eu-only"], regions=["eu-west-1"]))
    assert pod_regions(result) == [["eu-west-1"], ["eu-west-1"]]
    residency = condition(result, "ResidencyCompliant")
    assert (residency["status"], residency["reason"]) == ("True", "Compliant")
    assert not [e for e in result.events if e.type == "Warning"]


def test_without_policies_the_condition_says_so() -> None:
    residency = condition(run(DDP.obj(), ResidencyVerdict()), "ResidencyCompliant")
    assert (residency["status"], residency["reason"]) == ("True", "NoPolicy")
