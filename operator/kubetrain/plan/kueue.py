"""A job labelled kueue.x-k8s.io/queue-name is admitted by Kueue, as one unit, through a Workload
the operator creates and owns (render/kueue.py). Until Kueue admits it the job is Queued (reason
WaitingForAdmission) with no pod; once admitted its pods are created on the admitted flavour.

Eviction (preemption by a higher-priority job, a ClusterQueue stopped, ...) is not a failure: the
attempt's pods are deleted, the job starts a new attempt (status.restarts and
runPolicy.backoffLimit untouched) and waits Queued again; once no pod of it is left the operator
releases the Workload's quota (what Kueue's own job integrations do), so Kueue can admit it again
later. At the end the Workload is marked Finished, which frees its quota for the next job."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kubetrain.api.events import EventType
from kubetrain.api.kueue import ADMITTED, EVICTED, FINISHED, QUOTA_RESERVED
from kubetrain.api.status import ConditionType as C
from kubetrain.api.status import Reason as R
from kubetrain.plan.draft import Draft, Event
from kubetrain.plan.observed import ObservedPod
from kubetrain.plan.queue import dequeue, enqueue
from kubetrain.policy.kueue import KueueFacts, admitted, cluster_queue, condition, finished, holds_quota, is_true
from kubetrain.render.kueue import priority_class, queue_name, render_workload, workload_name

# Kueue's Workload events wake the job at once; this is only the safety net for a missed one.
KUEUE_RECHECK_SECONDS = 60.0


def needs_kueue(draft: Draft) -> bool:
    """Whether the reconcile must read the job's Workload: the job asks for a LocalQueue."""
    return queue_name(draft.job) is not None


def admit_kueue(
    draft: Draft, observed: list[ObservedPod], pods: Callable[[], list[dict[str, Any]]], facts: KueueFacts | None
) -> bool:
    """True when the attempt may have pods (Kueue admitted the job, or Kueue is not asked); False
    holds the job Queued. `observed`: every pod of the job; `pods` renders the attempt, to
    describe to Kueue when the Workload does not exist yet."""
    queue = queue_name(draft.job)
    if facts is None or queue is None:
        return True
    name = workload_name(draft.job.metadata.name)
    workload = facts.workload
    named = priority_class(draft.job)
    if workload is None and named and facts.priority is None:
        enqueue(draft, R.WAITING_FOR_ADMISSION, f"WorkloadPriorityClass {named} (label kueue.x-k8s.io/priority-class) "
                "does not exist; the job is described to Kueue once it does", KUEUE_RECHECK_SECONDS)
        return False
    if workload is None:
        draft.create.append(render_workload(draft.job, queue, pods(), facts.priority))
        enqueue(draft, R.WAITING_FOR_ADMISSION, f"waiting for Kueue to admit Workload {name} (LocalQueue {queue})",
                KUEUE_RECHECK_SECONDS)
        return False
    if admitted(workload):
        dequeue(draft, R.WAITING_FOR_ADMISSION, f"Kueue admitted Workload {name} to ClusterQueue "
                f"{cluster_queue(workload)}; creating the pods")
        return True
    live = [p for p in observed if not p.deleting]
    # Only the attempt that was running is evicted: a pod of an earlier attempt still seen alive
    # (the deletion not yet delivered by the watch) is deleted again, not evicted a second time.
    if any(p.attempt == draft.attempt for p in live) or draft.is_true(C.CREATED) or draft.is_true(C.RUNNING):
        _evicted(draft, workload, [p.name for p in live])
    elif not live and is_true(workload, EVICTED) and holds_quota(workload):
        draft.workload_status = release(workload, draft.now.isoformat().replace("+00:00", "Z"))
    pending = condition(workload, QUOTA_RESERVED)
    short = pending is not None and pending.get("status") == "False" and pending.get("message")
    detail = f": {pending['message']}" if pending is not None and short else ""
    enqueue(draft, R.WAITING_FOR_ADMISSION, f"waiting for Kueue to admit Workload {name} (LocalQueue {queue}){detail}",
            KUEUE_RECHECK_SECONDS)
    return False


def _evicted(draft: Draft, workload: dict[str, Any], live: list[str]) -> None:
    """Stops the attempt that was running: its pods go, the next attempt waits for re-admission."""
    evicted = condition(workload, EVICTED)
    why = evicted.get("message") or evicted.get("reason") if evicted else "admission withdrawn"
    draft.next_attempt()
    message = (f"evicted by Kueue ({why}); pods deleted, waiting to be admitted again as attempt {draft.attempt} "
               "(not counted against runPolicy.backoffLimit)")
    draft.close(C.CREATED, R.EVICTED, message)
    draft.close(C.RUNNING, R.EVICTED, message)
    draft.delete(live)
    draft.events.append(Event(type=EventType.NORMAL, reason=R.EVICTED, message=message))


def release(workload: dict[str, Any], now: str) -> dict[str, Any]:
    """The status merge patch that gives an evicted Workload's quota back once none of its pods is
    left: QuotaReserved and Admitted False, admission cleared, Requeued True after a preemption
    (as Kueue's jobframework does for its built-in integrations)."""
    evicted = condition(workload, EVICTED) or {}
    message = str(evicted.get("message") or "evicted")
    generation = workload["metadata"].get("generation")
    conditions = [c for c in workload["status"].get("conditions") or []
                  if c.get("type") not in (QUOTA_RESERVED, ADMITTED, "Requeued")]
    conditions += [
        _condition(QUOTA_RESERVED, "False", "Pending", message, now, generation),
        _condition(ADMITTED, "False", "NoReservation", "The workload has no reservation", now, generation),
        _condition("Requeued", "True" if evicted.get("reason") == "Preempted" else "False",
                   str(evicted.get("reason") or "Evicted"), message, now, generation),
    ]
    return {"status": {"admission": None, "conditions": conditions}}


def finish_kueue(draft: Draft, facts: KueueFacts | None) -> None:
    """A finished job's Workload is marked Finished (once), which frees its quota."""
    workload = facts.workload if facts is not None else None
    if workload is None or finished(workload):
        return
    succeeded = draft.is_true(C.SUCCEEDED)
    now = draft.now.isoformat().replace("+00:00", "Z")
    reason, message = ("Succeeded", "the TrainingJob succeeded") if succeeded else ("Failed", "the TrainingJob failed")
    conditions = [c for c in (workload.get("status") or {}).get("conditions") or [] if c.get("type") != FINISHED]
    conditions.append(_condition(FINISHED, "True", reason, message, now, workload["metadata"].get("generation")))
    draft.workload_status = {"status": {"conditions": conditions}}


def _condition(type_: str, status: str, reason: str, message: str, now: str, generation: Any) -> dict[str, Any]:
    found = {"type": type_, "status": status, "reason": reason, "message": message, "lastTransitionTime": now}
    return {**found, "observedGeneration": generation} if generation is not None else found
