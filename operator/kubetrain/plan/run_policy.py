"""spec.runPolicy -> the status and actions it calls for: suspend (and resume), the
activeDeadlineSeconds clock, and, once the job has finished, cleanPodPolicy and
ttlSecondsAfterFinished. One step per field, called by the TrainingJob planner (plan/job.py) at its
place in the lifecycle; backoffLimit stays with the restarts it bounds (plan/job.py)."""

from __future__ import annotations

from datetime import datetime, timedelta

from kubetrain.api.spec import CleanPodPolicy
from kubetrain.api.status import ConditionType as C
from kubetrain.api.status import Reason as R
from kubetrain.plan.draft import Draft
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
        draft.requeue_after = (end - draft.now).total_seconds()


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
