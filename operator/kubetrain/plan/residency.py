"""The residency verdict -> the ResidencyCompliant condition, its Event, and whether the job may
(go on) run. Enforce violations fail the job for good (reason ResidencyViolation): its pods are
deleted and never recreated, even if the policy is loosened later, because a run that was stopped
half-way must be restarted deliberately (re-create the job), never resumed silently."""

from __future__ import annotations

from kubetrain.api.events import EventType
from kubetrain.api.status import ConditionStatus
from kubetrain.api.status import ConditionType as C
from kubetrain.api.status import Reason as R
from kubetrain.plan import conditions as cond
from kubetrain.plan.draft import Draft, Event
from kubetrain.policy.residency.verdict import ResidencyVerdict

RECHECK_SECONDS = 30.0
"""A job that may run is judged again at least this often: a namespace relabelled into (or out
of) a policy wakes no watch the operator holds, so this period bounds how long a job runs under
a verdict that no longer holds (with the namespace labels' cache, controller/residency.py)."""


def apply_residency(draft: Draft, verdict: ResidencyVerdict) -> bool:
    """Sets the condition; returns False when the job must not run (Failed is set then)."""
    if verdict.blocking:
        message = f"data residency: {verdict.summary(verdict.blocking)}"
        _set(draft, False, R.RESIDENCY_VIOLATION, message)
        draft.set(
            C.FAILED, True, R.RESIDENCY_VIOLATION, f"{message} (no worker may run; fix the spec and re-create the job)"
        )
        return False
    if verdict.audited:
        _set(
            draft,
            False,
            R.RESIDENCY_VIOLATION_AUDITED,
            f"data residency (Audit, the job runs): {verdict.summary(verdict.audited)}",
        )
    elif verdict.policies:
        _set(draft, True, R.COMPLIANT, f"allowed by DataResidencyPolicy {', '.join(verdict.policies)}")
    else:
        _set(draft, True, R.NO_POLICY, "no DataResidencyPolicy selects this namespace; the operator default allows it")
    return True


def recheck(draft: Draft) -> None:
    """A job whose pods exist (started, not finished, not suspended) is planned again within
    RECHECK_SECONDS at the latest. One without pods has nothing running to stop, and its pods are
    created only after a judgment on facts read fresh then: re-checking it would only cost a
    policy LIST and a namespace GET every period for each queued or suspended job."""
    if not draft.finished() and draft.start_time is not None:
        draft.requeue_within(RECHECK_SECONDS)


def _set(draft: Draft, status: bool, reason: str, message: str) -> None:
    old = cond.find(draft.job.status.conditions, C.RESIDENCY_COMPLIANT)
    draft.set(C.RESIDENCY_COMPLIANT, status, reason, message)
    changed = old is None or old.status != ConditionStatus.FALSE or old.message != message
    if not status and changed:
        draft.events.append(Event(type=EventType.WARNING, reason=reason, message=message))
