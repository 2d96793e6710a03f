"""metav1.Condition bookkeeping, and the one function that turns conditions into a phase."""

from __future__ import annotations

from datetime import datetime

from kubetrain.api.status import Condition, ConditionStatus, ConditionType, Phase


def find(conditions: list[Condition], type_: str) -> Condition | None:
    return next((c for c in conditions if c.type == type_), None)


def is_true(conditions: list[Condition], type_: str) -> bool:
    condition = find(conditions, type_)
    return condition is not None and condition.status == ConditionStatus.TRUE


def set_condition(
    conditions: list[Condition],
    type_: str,
    status: bool,
    reason: str,
    message: str,
    now: datetime,
    generation: int,
) -> list[Condition]:
    """A new list with `type_` set. lastTransitionTime moves only when the status flips, so
    re-asserting a condition on every reconcile changes nothing."""
    wanted = ConditionStatus.TRUE if status else ConditionStatus.FALSE
    old = find(conditions, type_)
    new = Condition(
        type=type_,
        status=wanted,
        reason=reason,
        message=message,
        last_transition_time=old.last_transition_time if old is not None and old.status == wanted else now,
        observed_generation=generation,
    )
    if old is None:
        return [*conditions, new]
    return [new if c.type == type_ else c for c in conditions]


def set_false_if_true(
    conditions: list[Condition], type_: ConditionType, reason: str, message: str, now: datetime, generation: int
) -> list[Condition]:
    """Closes a condition that no longer holds without inventing one that never did."""
    if not is_true(conditions, type_):
        return conditions
    return set_condition(conditions, type_, False, reason, message, now, generation)


_PRECEDENCE = (
    (ConditionType.FAILED, Phase.FAILED),
    (ConditionType.SUCCEEDED, Phase.SUCCEEDED),
    (ConditionType.SUSPENDED, Phase.SUSPENDED),
    (ConditionType.QUEUED, Phase.QUEUED),
    (ConditionType.RESTARTING, Phase.RESTARTING),
    (ConditionType.RUNNING, Phase.RUNNING),
    (ConditionType.CREATED, Phase.STARTING),
)


def derive_phase(conditions: list[Condition]) -> Phase:
    """The first true condition in precedence order: an outcome beats a hold, a hold beats
    progress. Queued: waiting, before any pod exists, for what will come (budget). Starting means
    every worker pod exists but not all run yet."""
    return next((phase for type_, phase in _PRECEDENCE if is_true(conditions, type_)), Phase.PENDING)
