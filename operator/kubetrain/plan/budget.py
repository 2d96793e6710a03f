"""The budget verdict -> the BudgetAvailable condition, its Event, and whether the job may start.
Judged before the job first starts: a run that was admitted keeps its budget, whatever other
jobs or policies do later. A refused job fails (reason BudgetExceeded or DeadlineRequired)
before any pod exists; re-create it when it fits. Under policies that queue (onExhaustion
Queue) it waits instead: Queued=True (reason BudgetExhausted), judged again on every reconcile
(a BudgetPolicy change wakes it, and it wakes itself every QUEUED_RECHECK_SECONDS, for jobs that
finished under their estimate, and when the period renews) and started once it fits. Judged
again when an edit of spec.workers rolls a started job into a larger attempt (plan/job.py _roll)."""

from __future__ import annotations

from kubetrain.api.events import EventType
from kubetrain.api.status import ConditionType as C
from kubetrain.api.status import Reason as R
from kubetrain.plan import conditions as cond
from kubetrain.plan.draft import Draft, Event
from kubetrain.plan.queue import dequeue, enqueue
from kubetrain.policy.budget import BudgetVerdict

# Other jobs of the namespace finishing under their estimate free budget without any event the
# queued job hears of; a minute is the longest it waits unnoticed.
QUEUED_RECHECK_SECONDS = 60.0


def needs_budget(draft: Draft) -> bool:
    """Whether the reconcile must fetch the budget facts: before the job starts, and after an edit
    of a started job's spec (a spec.workers raise is judged when the group rolls)."""
    if draft.finished():
        return False
    edited = draft.job.status.observed_generation != draft.job.metadata.generation
    return _before_start(draft) or (draft.first_start_time is not None and edited)


def _before_start(draft: Draft) -> bool:
    return not draft.finished() and draft.start_time is None and not draft.is_true(C.BUDGET_AVAILABLE)


def apply_budget(draft: Draft, verdict: BudgetVerdict | None) -> bool:
    """Sets the condition; returns False when the job must not start (Failed is set then, or
    Queued under policies that queue). None: not judged in this reconcile (the job already has
    its budget)."""
    if verdict is None or not _before_start(draft):
        return True
    old = cond.find(draft.conditions, C.BUDGET_AVAILABLE)
    draft.set(C.BUDGET_AVAILABLE, verdict.allowed, verdict.reason, verdict.message)
    if old is None or old.reason != verdict.reason:
        kind = EventType.NORMAL if verdict.allowed or verdict.queue else EventType.WARNING
        draft.events.append(Event(type=kind, reason=verdict.reason, message=verdict.message))
    if verdict.allowed:
        dequeue(draft, R.BUDGET_EXHAUSTED, "the job fits its GPU budget now; starting it")
        return True
    if verdict.queue:
        _enqueue(draft, verdict)
        return False
    draft.set(C.FAILED, True, verdict.reason, f"{verdict.message} (no worker was started)")
    return False


def _enqueue(draft: Draft, verdict: BudgetVerdict) -> None:
    renews = f"; the budget renews at {verdict.retry_at:%Y-%m-%dT%H:%M:%SZ}" if verdict.retry_at else ""
    wait = QUEUED_RECHECK_SECONDS
    if verdict.retry_at is not None:
        wait = min(wait, max((verdict.retry_at - draft.now).total_seconds(), 1.0))
    enqueue(draft, R.BUDGET_EXHAUSTED, f"waiting for GPU budget: {verdict.message}{renews}", wait)


def refuse_growth(draft: Draft, verdict: BudgetVerdict | None, old_workers: int) -> bool:
    """A spec.workers raise of a started job that no longer fits fails it (reason of the verdict,
    its pods stopped) instead of rolling; True when so. `verdict` None: the budget was not
    fetched (the reconcile fetches it after every edit of a started job, status observedGeneration)."""
    if verdict is None or verdict.allowed or draft.job.spec.workers <= old_workers:
        return False
    message = (f"spec.workers raised from {old_workers} to {draft.job.spec.workers}: {verdict.message} "
               "(the job is stopped)")
    draft.set(C.BUDGET_AVAILABLE, False, verdict.reason, verdict.message)
    draft.set(C.FAILED, True, verdict.reason, message)
    draft.events.append(Event(type=EventType.WARNING, reason=verdict.reason, message=message))
    return True
