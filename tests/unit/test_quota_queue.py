"""Quotas judged for a whole attempt (policy/quota.py, plan/quota.py): what the pods count against
each quota key, what is short, and the planner holding the job Queued (reason QuotaExceeded) with
no pod created until every pod fits, then creating them all."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from kubetrain.api.events import EventType
from kubetrain.api.status import Phase, Reason
from kubetrain.plan.decision import Needs
from kubetrain.plan.draft import Plan
from kubetrain.plan.job import plan
from kubetrain.plan.quota import QUOTA_RECHECK_SECONDS
from kubetrain.policy.quota import QuotaFacts, demand, quota_shortage
from tests.unit.test_plan_rules import CATALOGUE, DDP, NOW, SETTINGS, children, observe, raw_pod


def pod(requests: dict[str, str] | None = None, limits: dict[str, str] | None = None) -> dict[str, Any]:
    resources = {k: v for k, v in (("requests", requests), ("limits", limits)) if v}
    return {"spec": {"containers": [{"name": "trainer", "resources": resources}]}}


def quota(hard: dict[str, str], used: dict[str, str], name: str = "team", **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": {"hard": hard, **spec}, "status": {"hard": hard, "used": used}}


def test_demand_counts_pods_requests_limits_and_limits_as_default_requests() -> None:
    pods = [pod({"cpu": "500m", "memory": "1Gi"}, {"nvidia.com/gpu": "4", "memory": "2Gi"})] * 3
    assert demand(pods) == {
        "pods": 3,
        "requests.cpu": Decimal("1.5"), "cpu": Decimal("1.5"),
        "requests.memory": Decimal(3 * 2**30), "memory": Decimal(3 * 2**30),
        "requests.nvidia.com/gpu": 12,  # no request: the limit is the request
        "limits.nvidia.com/gpu": 12, "limits.memory": Decimal(6 * 2**30),
    }


@pytest.mark.parametrize(("quotas", "short"), [
    ([quota({"requests.nvidia.com/gpu": "16"}, {"requests.nvidia.com/gpu": "4"})], None),
    ([quota({"requests.nvidia.com/gpu": "16"}, {"requests.nvidia.com/gpu": "8"})],
     "ResourceQuota team: 3 pods need requests.nvidia.com/gpu 12, 8 of 16 left"),
    ([quota({"pods": "2"}, {})], "ResourceQuota team: 3 pods need pods 3, 2 of 2 left"),
    ([quota({"requests.nvidia.com/gpu": "4"}, {}, scopes=["BestEffort"])], None),  # the API server's to judge
    ([], None),
], ids=["room", "gpus-short", "pod-count-short", "scoped-quota-skipped", "no-quota"])
def test_the_whole_group_must_fit_what_each_quota_has_left(quotas: list[dict[str, Any]], short: str | None) -> None:
    pods = [pod(limits={"nvidia.com/gpu": "4"})] * 3
    assert quota_shortage(pods, QuotaFacts(quotas=quotas)) == short


FULL = QuotaFacts(quotas=[quota({"requests.nvidia.com/gpu": "2"}, {"requests.nvidia.com/gpu": "1"})])
ROOM = QuotaFacts(quotas=[quota({"requests.nvidia.com/gpu": "2"}, {"requests.nvidia.com/gpu": "0"})])


def judged(status: dict[str, Any], facts: QuotaFacts, *pods: dict[str, Any]) -> Plan:
    job = DDP.status(status).obj()  # 2 workers x 1 GPU
    return plan(job, observe(*pods, service=False), children(job), CATALOGUE, SETTINGS, NOW, quota=facts)


def test_a_group_that_does_not_fit_the_quota_is_queued_with_no_pod() -> None:
    result = judged({}, FULL)

    assert result.status.phase == Phase.QUEUED and result.create == [] and result.status.start_time is None
    queued = next(c for c in result.status.conditions if c.type == "Queued")
    assert queued.reason == Reason.QUOTA_EXCEEDED
    assert "ResourceQuota team: 2 pods need requests.nvidia.com/gpu 2, 1 of 2 left" in queued.message
    assert [e.type for e in result.events] == [EventType.NORMAL]
    assert result.requeue_after == QUOTA_RECHECK_SECONDS


def test_a_queued_group_is_created_whole_once_the_quota_has_room() -> None:
    result = judged(judged({}, FULL).status.to_k8s(), ROOM)

    assert [o["kind"] for o in result.create].count("Pod") == 2
    queued = next(c for c in result.status.conditions if c.type == "Queued")
    assert queued.status == "False" and queued.reason == Reason.ADMITTED
    assert result.status.phase == Phase.PENDING


def test_once_a_pod_of_the_attempt_exists_the_rest_is_created_whatever_the_quota() -> None:
    result = judged({}, FULL, raw_pod(0, "Pending"))
    assert [o["metadata"]["name"] for o in result.create if o["kind"] == "Pod"] == ["pytorch-ddp-worker-1"]


def _needs_quota(status: dict[str, Any], *pods: dict[str, Any]) -> bool:
    raw = DDP.status(status).obj().model_dump(by_alias=True, exclude_none=True, mode="json")
    return Needs.of(raw, NOW, list(pods)).quota


def test_the_quotas_are_fetched_only_until_a_pod_of_the_attempt_is_live() -> None:
    assert _needs_quota({}), "no pod yet: the whole group is judged"
    assert not _needs_quota({}, raw_pod(0, "Pending")), "the group was judged when its first pod was created"
    assert _needs_quota({}, raw_pod(0, "Pending", attempt=1)), "a pod of another attempt is a leftover"
    assert _needs_quota({}, raw_pod(0, "Running", deleting=True)), "a pod on its way out is not live"
    created = {"phase": "Running", "conditions": [{"type": "Created", "status": "True", "reason": "AllPodsCreated",
                                                   "lastTransitionTime": "2026-01-01T00:00:00Z"}]}
    assert not _needs_quota(created), "Created: nothing is left to judge"
