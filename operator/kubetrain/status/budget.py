"""The budget verdict -> the BudgetAvailable condition, its Event, and whether the job may start.
Judged only before the job first starts: a run that was admitted keeps its budget, whatever
other jobs or policies do later. A refused job fails (reason BudgetExceeded or DeadlineRequired)
before any pod exists; re-create it when it fits."""

from __future__ import annotations

from kubetrain.api.status import ConditionType as C
from kubetrain.policy.budget import BudgetVerdict
from kubetrain.status import conditions as cond
from kubetrain.status.draft import Draft, Event, EventType


def needs_budget(draft: Draft) -> bool:
    return not draft.finished() and draft.start_time is None and not draft.is_true(C.BUDGET_AVAILABLE)


def apply_budget(draft: Draft, verdict: BudgetVerdict | None) -> bool:
    """Sets the condition; returns False when the job must not start (Failed is set then).
    None: not judged in this reconcile (the job already has its budget)."""
    if verdict is None or not needs_budget(draft):
        return True
    old = cond.find(draft.conditions, C.BUDGET_AVAILABLE)
    draft.set(C.BUDGET_AVAILABLE, verdict.allowed, verdict.reason, verdict.message)
    if old is None or old.reason != verdict.reason:
        kind = EventType.NORMAL if verdict.allowed else EventType.WARNING
        draft.events.append(Event(type=kind, reason=verdict.reason, message=verdict.message))
    if verdict.allowed:
        return True
    draft.set(C.FAILED, True, verdict.reason, f"{verdict.message} (no worker was started)")
    return False
