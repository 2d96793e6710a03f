"""Phase Queued: a job waiting, before any pod of its attempt exists, for something that will
come (GPU budget: plan/budget.py; namespace quota: plan/quota.py). Queued=True carries the reason
and says what is short; Running=False repeats the reason, so `kubectl get tj` (whose Reason
column is Running's) shows why the job waits. Every Event of it is Normal: waiting is no fault."""

from __future__ import annotations

from kubetrain.api.status import ConditionStatus
from kubetrain.api.status import ConditionType as C
from kubetrain.api.status import Reason as R
from kubetrain.plan import conditions as cond
from kubetrain.plan.draft import Draft


def enqueue(draft: Draft, reason: str, message: str, recheck_seconds: float) -> None:
    """Holds the job Queued for `reason`, judged again within `recheck_seconds`."""
    draft.set(C.QUEUED, True, reason, message)
    draft.set(C.RUNNING, False, reason, message)
    draft.requeue_within(recheck_seconds)


def dequeue(draft: Draft, reason: str, message: str) -> None:
    """Out of the queue that `reason` held it in: Queued closes (reason Admitted), and Running's
    copy of the reason goes (the pods' own progress writes Running from here on)."""
    queued = cond.find(draft.conditions, C.QUEUED)
    if queued is None or queued.status != ConditionStatus.TRUE or queued.reason != reason:
        return
    draft.set(C.QUEUED, False, R.ADMITTED, message)
    running = cond.find(draft.conditions, C.RUNNING)
    if running is not None and running.status == ConditionStatus.FALSE and running.reason == reason:
        draft.conditions = [c for c in draft.conditions if c is not running]
