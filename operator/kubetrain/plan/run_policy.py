"""spec.runPolicy -> the status and actions it calls for: suspend (and resume), the
activeDeadlineSeconds clock, the progressDeadlineSeconds watch over the trainer's reports, and,
once the job has finished, cleanPodPolicy and ttlSecondsAfterFinished. One step per field, called
by the TrainingJob planner (plan/job.py) at its place in the lifecycle; backoffLimit stays with the
restarts it bounds (plan/job.py), which a stall with onStall Restart is one of."""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict

from kubetrain.api.events import EventType
from kubetrain.api.spec import CleanPodPolicy
from kubetrain.api.status import ConditionType as C
from kubetrain.api.status import Reason as R
from kubetrain.plan import conditions as cond
from kubetrain.plan.draft import Draft, Event
from kubetrain.plan.observed import Observed, ObservedPod


def suspend(draft: Draft, observed: Observed) -> None:
    """runPolicy.suspend: Suspended=True, the workers deleted, the job held."""
    message = "runPolicy.suspend is true: the workers are deleted and the job is held"
    draft.set(C.SUSPENDED, True, R.SUSPENDED, message)
    for type_ in (C.CREATED, C.RUNNING, C.RESTARTING):
        draft.close(type_, R.SUSPENDED, message)
    # Like a Kubernetes Job: the activeDeadlineSeconds clock starts again on resume. firstStartTime
    # stays: the spec the pods read remains frozen (api/immutable.py).
    draft.start_time = None
    draft.group_stopped()
    draft.delete([p.name for p in observed.pods if not p.deleting])


def resume(draft: Draft) -> None:
    """A job that runs (again) after runPolicy.suspend was set back to false."""
    if draft.is_true(C.SUSPENDED):
        draft.set(C.SUSPENDED, False, R.RESUMED, "runPolicy.suspend is false: the workers are started again")


def deadline(draft: Draft) -> datetime | None:
    """When runPolicy.activeDeadlineSeconds runs out: counted from status.startTime, so not while
    the job waits to start or is suspended."""
    seconds = draft.job.spec.run_policy.active_deadline_seconds
    if seconds is None or draft.start_time is None:
        return None
    return draft.start_time + timedelta(seconds=seconds)


def exceed_deadline(draft: Draft, current: list[ObservedPod]) -> bool:
    """Fails the job (DeadlineExceeded) and stops its running pods once the deadline has passed;
    True when so."""
    end = deadline(draft)
    if end is None or draft.now < end:
        return False
    seconds = draft.job.spec.run_policy.active_deadline_seconds
    draft.set(
        C.FAILED, True, R.DEADLINE_EXCEEDED, f"the job ran longer than runPolicy.activeDeadlineSeconds ({seconds}s)"
    )
    draft.delete([p.name for p in current if not p.finished and not p.deleting])
    return True


def wake_at_deadline(draft: Draft) -> None:
    """A job that is not finished is planned again when its deadline runs out, which no watch
    event would announce."""
    end = deadline(draft)
    if end is not None:
        draft.requeue_within((end - draft.now).total_seconds())


class ProgressVerdict(BaseModel):
    """runPolicy.progressDeadlineSeconds judged at one moment."""

    model_config = ConfigDict(frozen=True)

    silent_seconds: float
    """Since the last progress report, or since every worker ran when none came after that."""
    reported: bool
    """Whether a report came since every worker ran (else the trainer has said nothing yet)."""
    stalled: bool
    check_in: float
    """Seconds until the deadline runs out if no report comes (0 once stalled)."""


def judge_progress(
    now: datetime, running_since: datetime | None, last_report: datetime | None, deadline_seconds: int | None
) -> ProgressVerdict | None:
    """None when there is nothing to watch: no deadline set, or the group is not running. The clock
    starts when every worker runs, not at creation (image pulls, scheduling and a queue are not
    the trainer's silence), and a report of an earlier attempt does not count for this one."""
    if deadline_seconds is None or running_since is None:
        return None
    reported = last_report is not None and last_report > running_since
    since = last_report if reported and last_report is not None else running_since
    silent = max((now - since).total_seconds(), 0.0)
    return ProgressVerdict(
        silent_seconds=silent,
        reported=reported,
        stalled=silent >= deadline_seconds,
        check_in=max(deadline_seconds - silent, 0.0),
    )


def progress_stall(draft: Draft) -> str | None:
    """runPolicy.progressDeadlineSeconds over a running group: on a stall, Stalled=True with a
    Warning Event, and the message the caller fails or restarts the job with (runPolicy.onStall);
    else None, with a wake-up when the deadline would run out (no watch event announces silence),
    and a Stalled condition closed once a report came after it."""
    policy = draft.job.spec.run_policy
    progress = draft.job.status.progress
    last_report = progress.update_time if progress is not None else None
    _close_stall(draft, last_report)
    running = cond.find(draft.conditions, C.RUNNING)
    running_since = running.last_transition_time if draft.is_true(C.RUNNING) and running is not None else None
    verdict = judge_progress(draft.now, running_since, last_report, policy.progress_deadline_seconds)
    if verdict is None:
        return None
    if not verdict.stalled:
        draft.requeue_within(verdict.check_in)
        return None
    what = "no progress report" if verdict.reported else "no progress report since every worker ran"
    message = (f"{what} for {verdict.silent_seconds:.0f}s (runPolicy.progressDeadlineSeconds: "
               f"{policy.progress_deadline_seconds}s; runPolicy.onStall: {policy.on_stall.value})")
    draft.set(C.STALLED, True, R.PROGRESS_DEADLINE_EXCEEDED, message)
    draft.events.append(Event(type=EventType.WARNING, reason=R.PROGRESS_DEADLINE_EXCEEDED, message=message))
    return message


def _close_stall(draft: Draft, last_report: datetime | None) -> None:
    """A stalled job whose trainer reported again (after a restart, or a slow step that ended)."""
    stalled = cond.find(draft.conditions, C.STALLED)
    if stalled is None or not draft.is_true(C.STALLED) or last_report is None:
        return
    # Both stamps are whole seconds: a restarted trainer can report within the second the stall was
    # written, and no report the stall was judged on is that recent (it was a whole deadline old).
    if last_report >= stalled.last_transition_time:
        message = f"the trainer reported progress again at {last_report:%Y-%m-%dT%H:%M:%SZ}"
        draft.close(C.STALLED, R.PROGRESS_RESUMED, message)
        draft.events.append(Event(type=EventType.NORMAL, reason=R.PROGRESS_RESUMED, message=message))


def clean_pods(draft: Draft, observed: Observed) -> None:
    """runPolicy.cleanPodPolicy of a finished job: All deletes every pod, Running those still
    running, None keeps them (for their logs)."""
    policy = draft.job.spec.run_policy.clean_pod_policy
    if policy == CleanPodPolicy.ALL:
        draft.delete([p.name for p in observed.pods if not p.deleting])
    elif policy == CleanPodPolicy.RUNNING:
        draft.delete([p.name for p in observed.pods if not p.deleting and not p.finished])


def expire_after_ttl(draft: Draft, completed: datetime) -> None:
    """runPolicy.ttlSecondsAfterFinished: the job is deleted that long after it `completed`
    (status.completionTime); until then it is planned again when the time comes."""
    ttl = draft.job.spec.run_policy.ttl_seconds_after_finished
    if ttl is None:
        return
    expiry = completed + timedelta(seconds=ttl)
    if draft.now >= expiry:
        draft.delete_job = True
    else:
        draft.requeue_after = (expiry - draft.now).total_seconds()
