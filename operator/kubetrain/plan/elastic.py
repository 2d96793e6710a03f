"""spec.elastic in the planner: the group trains with any number of running workers from
spec.elastic.minWorkers to spec.workers. torchrun re-forms the group in place when a worker leaves
or joins; the operator's part is to count those changes, replace a lost worker alone (its new pod
joins once it can run), and restart the whole group when too few are left or too many were lost.

Membership is read from the running count the last plan recorded (status.elastic.workers), so a
loss is counted once whether the pod failed, was deleted, or its node vanished, and re-planning the
same state counts nothing."""

from __future__ import annotations

from kubetrain.api.events import EventType
from kubetrain.api.status import ConditionType as C
from kubetrain.api.status import ElasticStatus
from kubetrain.api.status import Reason as R
from kubetrain.plan.draft import Draft, Event
from kubetrain.plan.failures import Failure, failure_of
from kubetrain.plan.group import Group
from kubetrain.plan.observed import ObservedPod

# A worker that finished with its group still counts as a member until the job's outcome is decided.
_MEMBER_PHASES = frozenset({"Running", "Succeeded"})


def _members(live: list[ObservedPod]) -> int:
    return sum(1 for p in live if p.phase in _MEMBER_PHASES)


def follow(draft: Draft, group: Group, current: list[ObservedPod], live: list[ObservedPod]) -> Failure | None:
    """Records the group's size and its changes since the last plan, deletes failed workers so
    they are created again, and returns the loss that ends the attempt, if any. While the group
    trains, a loss is a drop in the member count (re-planning the same state finds none); before
    it first ran, each failed worker counts, so one that can never start is not replaced forever."""
    minimum = group.min_workers or 0
    failed = [p for p in live if p.name in group.replaceable and p.phase == "Failed"]
    draft.delete([p.name for p in failed])
    now = _members(live)
    before = draft.elastic
    previous = before.workers if before is not None and draft.is_true(C.RUNNING) else None
    lost = len(failed) if previous is None else max(0, previous - now)
    joined = 0 if previous is None else max(0, now - previous)
    changes = before.membership_changes if before else 0
    draft.elastic = ElasticStatus(workers=now, membership_changes=changes)
    if lost:
        draft.worker_replacements += lost
        why = _why(current, group)
        if draft.worker_replacements > group.max_replacements:
            return Failure(
                pod=failed[0].name if failed else group.reporter,
                reason=R.WORKER_REPLACEMENTS_EXHAUSTED,
                message=f"{why}; {draft.worker_replacements} workers lost in this attempt "
                f"(spec.elastic.maxRestarts: {group.max_replacements})",
            )
        if previous is not None and now < minimum:
            return Failure(
                pod=failed[0].name if failed else group.reporter,
                reason=R.BELOW_MIN_WORKERS,
                message=f"{why}; {now} workers left, fewer than spec.elastic.minWorkers ({minimum})",
            )
        if previous is not None:
            draft.events.append(Event(
                type=EventType.WARNING,
                reason=R.MEMBERSHIP_CHANGED,
                message=f"{why}; the group re-forms with {now} workers and resumes from its last checkpoint "
                f"({draft.worker_replacements} of at most {group.max_replacements} losses in this attempt); "
                "the lost worker is created again and joins when it can run",
            ))
    if joined:
        draft.events.append(Event(
            type=EventType.NORMAL,
            reason=R.MEMBERSHIP_CHANGED,
            message=f"the group grows from {previous} to {now} workers and resumes from its last checkpoint",
        ))
    if previous is not None and (lost or joined):
        draft.elastic = ElasticStatus(workers=now, membership_changes=changes + 1)
    return None


def _why(current: list[ObservedPod], group: Group) -> str:
    """The lost workers' own failures, as far as their pods still tell."""
    failures = [f.message for p in current if p.name in group.replaceable and (f := failure_of(p)) is not None]
    return "; ".join(failures) if failures else "a worker left the group (its pod is gone)"
