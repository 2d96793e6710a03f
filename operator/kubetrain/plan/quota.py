"""The quota verdict -> Queued (reason QuotaExceeded) or the creates going ahead. Judged while an
attempt's pods are being created (Created not yet true), on the pods still to create when none of
the attempt exists yet: policy/quota.py says why a whole group is judged at once. A queued job is
judged again every QUOTA_RECHECK_SECONDS (pods ending elsewhere free quota without any event it
hears of)."""

from __future__ import annotations

from typing import Any

from kubetrain.api.status import ConditionType as C
from kubetrain.api.status import Reason as R
from kubetrain.plan.draft import Draft
from kubetrain.plan.group import group_of
from kubetrain.plan.observed import ObservedPod
from kubetrain.plan.queue import dequeue, enqueue
from kubetrain.policy.quota import QuotaFacts, quota_shortage

QUOTA_RECHECK_SECONDS = 30.0


def needs_quota(draft: Draft, pods: list[dict[str, Any]]) -> bool:
    """Whether the reconcile must fetch the namespace's quotas: while the attempt's pods may still
    be created and none of them is live yet. Once one is, the group was judged whole and the plan
    creates the rest unjudged (admit_quota), so the reconciles that see the first pods arrive
    fetch nothing. `pods`: the job's, as observed; read only while Created is not yet true."""
    if draft.finished() or draft.job.spec.run_policy.suspend or draft.is_true(C.CREATED):
        return False
    group = group_of(draft.job)
    observed = (ObservedPod.from_k8s(p) for p in pods)
    return not any(group.in_attempt(p, draft.attempt) and not p.deleting for p in observed)


def admit_quota(draft: Draft, pods: list[dict[str, Any]], facts: QuotaFacts | None) -> bool:
    """False (the job Queued) when the quotas have no room for all of `pods`; `facts` None: not
    fetched in this reconcile, nothing judged."""
    if facts is None or not pods:
        return True
    shortage = quota_shortage(pods, facts)
    if shortage is None:
        dequeue(draft, R.QUOTA_EXCEEDED, "the namespace's quotas have room for every pod now; creating them")
        return True
    enqueue(draft, R.QUOTA_EXCEEDED, f"waiting for quota: {shortage}; no pod is created until all fit",
            QUOTA_RECHECK_SECONDS)
    return False
