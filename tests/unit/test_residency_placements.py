"""Residency judged where the pods are: a pod scheduled before its namespace came under a policy
(or before the policy narrowed its regions) breaks it by running in another region, whatever its
spec says; and the planner then stops the job."""

from __future__ import annotations

from kubetrain.api import TrainingJob, default_catalogue
from kubetrain.policy import ResidencyFacts, evaluate
from kubetrain.policy.evaluate import PodPlacement
from tests.residency_cases import POLICY_NAME, eu_policy, job_manifest

CATALOGUE = default_catalogue()
JOB = TrainingJob.model_validate(job_manifest("placed", "team-eu", {"nodePool": "cpu", "resources": {
    "cpu": "100m", "memory": "64Mi", "gpus": 0}}))


def facts(*placements: PodPlacement, enforcement: str = "Enforce") -> ResidencyFacts:
    return ResidencyFacts(namespace="team-eu", policies=[eu_policy(POLICY_NAME, ["team-eu"], enforcement)],
                          placements=list(placements))


def test_a_pod_running_outside_the_allowed_regions_breaks_the_policy() -> None:
    verdict = evaluate(JOB, facts(PodPlacement(pod="placed-worker-0", node="cpu-us-0", region="us-east-1")), CATALOGUE)
    [violation] = verdict.blocking
    assert violation.rule == "spec.allowedRegions" and violation.field == "pod placed-worker-0"
    assert violation.value == "node cpu-us-0" and "runs in region us-east-1" in violation.reason
    assert violation.allowed == ["eu-west-1"]


def test_a_pod_on_a_node_whose_region_is_unknown_breaks_it_too() -> None:
    verdict = evaluate(JOB, facts(PodPlacement(pod="placed-worker-0", node="gone")), CATALOGUE)
    assert "unknown" in verdict.blocking[0].reason


def test_pods_in_the_allowed_region_comply_and_audit_only_records() -> None:
    inside = PodPlacement(pod="placed-worker-0", node="cpu-eu-0", region="eu-west-1")
    assert evaluate(JOB, facts(inside), CATALOGUE).violations == []
    outside = PodPlacement(pod="placed-worker-1", node="cpu-us-0", region="us-east-1")
    audited = evaluate(JOB, facts(inside, outside, enforcement="Audit"), CATALOGUE)
    assert not audited.blocking and [v.field for v in audited.audited] == ["pod placed-worker-1"]
