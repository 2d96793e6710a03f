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
from kubetrain.plan.queue import dequeue, enqueue
from kubetrain.policy.quota import QuotaFacts, quota_shortage

QUOTA_RECHECK_SECONDS = 30.0


def needs_quota(draft: Draft) -> bool:
    """Whether the reconcile must fetch the namespace's quotas: while the attempt's pods may still
    be created."""
    return not draft.finished() and not draft.job.spec.run_policy.suspend and not draft.is_true(C.CREATED)


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
