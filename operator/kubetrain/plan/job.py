"""Observed children + the job's status -> the job's new status and the actions that move the
cluster towards it. Pure: the decision depends only on its inputs, so re-planning the same state
(after an operator restart, or a partly applied plan) never double-counts a restart. The desired
children are rendered beside it (plan/decision.py) and handed in as `Desired`; spec.runPolicy's
steps live in plan/run_policy.py, each other policy's in the plan module of its name."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from kubetrain.api.contract import REPLICA_INDEX_LABEL, ROLE_LABEL
from kubetrain.api.events import EventType
from kubetrain.api.job import TrainingJob
from kubetrain.api.nodepools import NodePoolCatalogue
from kubetrain.api.spec import StallPolicy
from kubetrain.api.status import ConditionType as C
from kubetrain.api.status import Reason as R
from kubetrain.plan import conditions as cond
from kubetrain.plan import elastic, run_policy
from kubetrain.plan.budget import apply_budget, refuse_growth
from kubetrain.plan.draft import Draft, Event, Plan
from kubetrain.plan.failures import Failure, failure_of, first_failure, missing
from kubetrain.plan.group import Group, group_of
from kubetrain.plan.kueue import admit_kueue, finish_kueue
from kubetrain.plan.observed import Observed, ObservedPod
from kubetrain.plan.promotion import PromotionFacts, apply_promotion
from kubetrain.plan.provenance import cost, provenance
from kubetrain.plan.quota import admit_quota
from kubetrain.plan.replicas import replica_status
from kubetrain.plan.report import TrainerReport, parse_report
from kubetrain.plan.residency import apply_residency, recheck
from kubetrain.policy.budget import BudgetVerdict
from kubetrain.policy.kueue import KueueFacts, admitted_counts, placements
from kubetrain.policy.quota import QuotaFacts
from kubetrain.policy.residency.verdict import ALLOW_ALL, ResidencyVerdict
from kubetrain.render.errors import summarize
from kubetrain.render.kueue import placed
from kubetrain.render.objects import DesiredObjects
from kubetrain.render.pods import pod_image
from kubetrain.render.settings import RenderSettings
from kubetrain.render.validate import validate_spec

Desired = Callable[[], DesiredObjects]
"""The children of the job's current attempt, rendered when called (render.job.render_children with
the residency verdict's regions). The planner calls it only when it creates what is missing: a
finished, suspended, refused or invalid job is never rendered, so a spec that cannot be rendered
fails only a job that would start."""


def plan(
    job: TrainingJob,
    observed: Observed,
    desired: Desired,
    catalogue: NodePoolCatalogue,
    settings: RenderSettings,
    now: datetime,
    residency: ResidencyVerdict = ALLOW_ALL,
    budget: BudgetVerdict | None = None,
    promotion: PromotionFacts | None = None,
    quota: QuotaFacts | None = None,
    kueue: KueueFacts | None = None,
) -> Plan:
    """`desired` renders the job's children (see Desired); `catalogue` and `settings` serve the
    spec's validation, the cost and the provenance. `residency` is the verdict of the namespace's
    DataResidencyPolicies on this job, evaluated by the caller from fresh policies on every
    reconcile (they change after admission). `budget` (judged before the job first starts, and after
    an edit of a started job: a spec.workers raise that no longer fits fails it instead of rolling)
    and `promotion` (after it succeeded) are given by the caller only when needed; None leaves that
    part of the status as it is. `quota` (the namespace's ResourceQuotas, while the attempt's pods
    are being created) holds the job Queued rather than creating part of its group. `kueue` (the
    job's Workload, for a job labelled kueue.x-k8s.io/queue-name) holds it Queued until Kueue
    admits it (plan/kueue.py)."""
    # Whole seconds, like metav1.Time, so a status written and read back compares equal.
    draft = Draft.start(job, now.replace(microsecond=0))
    group = group_of(job)
    current = _current_attempt(group, observed.pods, draft.attempt)
    if not draft.finished():
        errors = validate_spec(job, catalogue)
        if errors:
            draft.set(C.FAILED, True, R.INVALID_SPEC, summarize(errors))
        elif not apply_residency(draft, residency):
            draft.delete([p.name for p in observed.pods if not p.deleting])
        elif job.spec.run_policy.suspend:
            run_policy.suspend(draft, observed)
        elif apply_budget(draft, budget):
            _run(draft, group, observed, current, desired, budget, quota, kueue)
    if draft.finished():
        _finish(draft, observed)
        finish_kueue(draft, kueue)
    else:
        run_policy.wake_at_deadline(draft)
    recheck(draft)
    report = _final_report(group, current)
    metrics = _metrics(job, report)
    draft.provenance = provenance(draft, report, pod_image(job, settings), _reporter_image_id(group, current))
    draft.cost = cost(draft, catalogue)
    if promotion is not None:
        apply_promotion(draft, promotion, metrics, draft.provenance)
    final = _current_attempt(group, observed.pods, draft.attempt)
    replicas = {role: replica_status([p for p in final if p.role == role]) for role in group.roles()}
    return draft.to_plan(replicas, metrics)


def _current_attempt(group: Group, pods: list[ObservedPod], attempt: int) -> list[ObservedPod]:
    return [p for p in pods if group.in_attempt(p, attempt)]


def _run(
    draft: Draft,
    group: Group,
    observed: Observed,
    current: list[ObservedPod],
    desired: Desired,
    budget: BudgetVerdict | None,
    quota: QuotaFacts | None,
    kueue: KueueFacts | None,
) -> None:
    job = draft.job
    run_policy.resume(draft)
    mine = {p.name for p in current}
    draft.delete([p.name for p in observed.pods if p.name not in mine and not p.deleting])
    if run_policy.exceed_deadline(draft, current):
        return
    if not admit_kueue(draft, observed.pods, lambda: desired().pods, kueue):
        return
    resized = sorted({p.workers for p in observed.pods if p.attempt == draft.attempt and p.workers is not None
                      and p.workers != job.spec.workers and not p.deleting})
    if resized and refuse_growth(draft, budget, resized[0]):
        draft.delete([p.name for p in current if not p.finished and not p.deleting])
        return
    if resized:
        _roll(draft, group, observed, resized[0])
        return
    critical = [p for p in current if p.name not in group.replaceable]
    failure = first_failure(_failures(draft, group, critical))
    if failure is not None:
        _fail_or_restart(draft, group, failure, current)
        return
    live = [p for p in current if not p.deleting]
    succeeded = {p.name for p in live if p.phase == "Succeeded"}
    if group.deciding <= succeeded:
        draft.set(C.SUCCEEDED, True, group.success_reason, _success_message(group, live))
        return
    stall = run_policy.progress_stall(draft)
    if stall is not None:
        _stalled(draft, group, stall, current)
        return
    if group.min_workers is not None:
        lost = elastic.follow(draft, group, current, live)
        if lost is not None:
            _fail_or_restart(draft, group, lost, current)
            return
    elif not _replace(draft, group, live, current):
        return
    _start(draft, group, observed, live, desired, quota, kueue)


def _failures(draft: Draft, group: Group, critical: list[ObservedPod]) -> list[Failure]:
    """Before every pod of the attempt has been seen (Created is not true) a deleted or
    missing pod is not a failure: it may be one the operator deleted on suspension, still
    terminating, and it is simply created (again) once gone."""
    created = draft.is_true(C.CREATED)
    failures = [f for p in critical if (created or not p.deleting) and (f := failure_of(p)) is not None]
    if created:
        present = {p.name for p in critical}
        failures += [
            missing(m.name, m.role)
            for m in group.members
            if m.name not in group.replaceable and m.name not in present
        ]
    return failures


def _replace(draft: Draft, group: Group, live: list[ObservedPod], current: list[ObservedPod]) -> bool:
    """A finished pod of a replaceable role is deleted alone and created again, in this attempt,
    once its name is free; the rest of the group keeps running. A worker that can never join (a
    bad flag, a crash at start) would be replaced forever, so one replacement more than
    spec.ray.maxWorkerFailures fails the attempt instead. False: the attempt ended. (An elastic
    group's losses: plan/elastic.py.)"""
    limit = group.max_replacements
    for pod in live:
        if pod.name not in group.replaceable or not pod.finished:
            continue
        failure = failure_of(pod)
        detail = failure.message if failure else f"{pod.role} {pod.name} exited"
        if draft.worker_replacements >= limit:
            exhausted = Failure(
                pod=pod.name,
                reason=R.WORKER_REPLACEMENTS_EXHAUSTED,
                message=f"{detail}; {draft.worker_replacements} workers already replaced in this attempt "
                f"(spec.ray.maxWorkerFailures: {limit})",
            )
            _fail_or_restart(draft, group, exhausted, current)
            return False
        draft.worker_replacements += 1
        draft.delete([pod.name])
        draft.events.append(
            Event(type=EventType.WARNING, reason=R.WORKER_REPLACED, message=f"{detail}; replacing it alone "
                  f"({draft.worker_replacements} of at most {limit} in this attempt)")
        )
    return True


def _fail_or_restart(draft: Draft, group: Group, failure: Failure, current: list[ObservedPod]) -> None:
    limit = draft.job.spec.run_policy.backoff_limit
    if failure.permanent:
        draft.set(C.FAILED, True, failure.reason, f"{failure.message} (not retried: a restart cannot fix it)")
        return
    if draft.restarts >= limit:
        draft.set(
            C.FAILED,
            True,
            R.BACKOFF_LIMIT_EXCEEDED,
            f"{failure.message}; runPolicy.backoffLimit ({limit}) whole-group restarts already used",
        )
        return
    draft.restarts += 1
    draft.next_attempt()
    message = f"{failure.message}; restarting {group.whole} (restart {draft.restarts} of at most {limit})"
    draft.set(C.RESTARTING, True, failure.reason, message)
    draft.close(C.RUNNING, R.RESTARTING, message)
    draft.close(C.CREATED, R.RESTARTING, message)
    draft.delete([p.name for p in current if not p.deleting])


def _stalled(draft: Draft, group: Group, message: str, current: list[ObservedPod]) -> None:
    """runPolicy.onStall: Fail ends the job and stops its pods; Restart replaces the whole group as
    a failure would, so runPolicy.backoffLimit bounds a trainer that hangs every time."""
    if draft.job.spec.run_policy.on_stall == StallPolicy.FAIL:
        draft.set(C.FAILED, True, R.PROGRESS_DEADLINE_EXCEEDED, message)
        draft.delete([p.name for p in current if not p.finished and not p.deleting])
        return
    stall = Failure(pod=group.reporter, reason=R.PROGRESS_DEADLINE_EXCEEDED, message=message)
    _fail_or_restart(draft, group, stall, current)


def _roll(draft: Draft, group: Group, observed: Observed, old_workers: int) -> None:
    """spec.workers was edited: the running group (whose WORLD_SIZE is the old count) is stopped
    and the next attempt starts with the new count. Not a failure: runPolicy.backoffLimit and
    status.restarts are untouched; training resumes from the last checkpoint."""
    draft.next_attempt()
    message = (f"spec.workers changed from {old_workers} to {draft.job.spec.workers}: restarting {group.whole} "
               f"as attempt {draft.attempt} (not counted against runPolicy.backoffLimit)")
    draft.set(C.RESTARTING, True, R.WORKERS_CHANGED, message)
    draft.close(C.RUNNING, R.WORKERS_CHANGED, message)
    draft.close(C.CREATED, R.WORKERS_CHANGED, message)
    draft.delete([p.name for p in observed.pods if not p.deleting])
    draft.events.append(Event(type=EventType.NORMAL, reason=R.WORKERS_CHANGED, message=message))


def _start(
    draft: Draft,
    group: Group,
    observed: Observed,
    live: list[ObservedPod],
    desired: Desired,
    quota: QuotaFacts | None,
    kueue: KueueFacts | None,
) -> None:
    """Creates what is missing; Created and Running are all-or-nothing over the group, and so is
    the quota check before the attempt's first pod. A Kueue-admitted job's pods go on the flavour
    Kueue admitted them to."""
    size = len(group.members)
    children = desired()
    taken = {p.name for p in observed.pods}
    pods = [pod for pod in children.pods if pod["metadata"]["name"] not in taken]
    if kueue is not None:
        pods = placed(_admitted(pods, admitted_counts(kueue)), placements(kueue))
    if not live and not admit_quota(draft, pods, quota):
        return
    if children.service["metadata"]["name"] not in observed.service_names:
        draft.create.append(children.service)
    if pods:
        # Created if missing (the controller ignores AlreadyExists), before the pods that use them.
        draft.create.extend(children.access)
        if children.pod_group is not None:
            draft.create.append(children.pod_group)
    draft.create.extend(pods)
    # The start (the deadline clock; firstStartTime freezes the spec) is written with the creates,
    # except while the API server refuses them (CreateRefused): each retry would write a start for
    # the refusal to take back, and for that moment freeze the spec the user is asked to fix. Such
    # a job starts when its pods are seen.
    running = cond.find(draft.conditions, C.RUNNING)
    refused = running is not None and running.status == "False" and running.reason == R.CREATE_REFUSED
    starting = bool(live) or (bool(pods) and not refused)
    if starting and draft.start_time is None:
        draft.start_time = draft.now
    if starting and draft.first_start_time is None:
        draft.first_start_time = draft.now
    attempt = f"attempt {draft.attempt}"
    # An elastic group may never have all its pods (a partial Kueue admission creates fewer).
    if len(live) >= (group.min_workers or size):
        draft.set(C.CREATED, True, R.ALL_WORKERS_CREATED, f"{group.noun} of {attempt} exist")
    if group.min_workers is not None:
        _elastic_running(draft, group, live, attempt)
    elif len(live) == size and all(p.phase == "Running" for p in live):
        message = f"{group.noun} of {attempt} are running"
        draft.set(C.RUNNING, True, R.ALL_WORKERS_RUNNING, message)
        draft.close(C.RESTARTING, R.ALL_WORKERS_RUNNING, message)
    else:
        _report_waiting(draft, live)


def _elastic_running(draft: Draft, group: Group, live: list[ObservedPod], attempt: str) -> None:
    """An elastic group runs once minWorkers of its workers run, worker 0 among them, and none of
    those placed on a node is still starting (so the count settles before torchrun's first round
    closes); a worker the scheduler cannot place yet waits without holding the others back."""
    minimum = group.min_workers or 0
    running = sum(1 for p in live if p.phase == "Running")
    starting = any(p.phase == "Pending" and p.node_name for p in live)
    # Worker 0 hosts the rendezvous: without it the others only wait.
    host = any(p.name == group.reporter and p.phase == "Running" for p in live)
    if running >= minimum and host and not starting:
        message = (f"{running} of {len(group.members)} workers of {attempt} are running "
                   f"(spec.elastic.minWorkers: {minimum})")
        draft.set(C.RUNNING, True, R.MIN_WORKERS_RUNNING, message)
        draft.close(C.RESTARTING, R.MIN_WORKERS_RUNNING, message)
    elif not draft.is_true(C.RUNNING):
        _report_waiting(draft, live)


def _admitted(pods: list[dict[str, Any]], counts: dict[str, int]) -> list[dict[str, Any]]:
    """The pods Kueue admitted: after a partial admission (an elastic job's workers) only the first
    `count` replicas of a role are created; the group trains with them."""
    def within(pod: dict[str, Any]) -> bool:
        labels = pod["metadata"]["labels"]
        count = counts.get(labels[ROLE_LABEL])
        return count is None or int(labels[REPLICA_INDEX_LABEL]) < count

    return [pod for pod in pods if within(pod)]


def _report_waiting(draft: Draft, live: list[ObservedPod]) -> None:
    """A pod the scheduler cannot place or whose container cannot start holds the whole group:
    Running=False says which and why (the reason a script matches, `kubectl get tj` shows it),
    with a Warning Event each time the reason changes."""
    stalled = next((p for p in live if p.waiting is not None and p.phase == "Pending"), None)
    if stalled is None or stalled.waiting is None:
        return
    reason, message = stalled.waiting.reason, f"pod {stalled.name}: {stalled.waiting.message}"
    previous = cond.find(draft.conditions, C.RUNNING)
    if previous is not None and previous.status == "False" and _same_stall(previous.reason, reason):
        return
    draft.set(C.RUNNING, False, reason, message)
    draft.events.append(Event(type=EventType.WARNING, reason=reason, message=message))


# The kubelet alternates these while it backs off; to a reader they are one stall.
_IMAGE_PULL = frozenset({"ErrImagePull", "ImagePullBackOff"})


def _same_stall(old: str, new: str) -> bool:
    return old == new or {old, new} <= _IMAGE_PULL


def _finish(draft: Draft, observed: Observed) -> None:
    """The outcome conditions are already set: the others close, completionTime is recorded once,
    then runPolicy's cleanPodPolicy and ttlSecondsAfterFinished apply."""
    outcome = R.SUCCEEDED if draft.is_true(C.SUCCEEDED) else R.FAILED
    for type_ in (C.RUNNING, C.RESTARTING):
        draft.close(type_, outcome, f"the job has {outcome.lower()}")
    completed = draft.completion_time or draft.now
    draft.completion_time = completed
    run_policy.clean_pods(draft, observed)
    run_policy.expire_after_ttl(draft, completed)


def _final_report(group: Group, pods: list[ObservedPod]) -> TrainerReport | None:
    """The final report of rank 0 (PyTorch) or of the Ray driver (the head): group.reporter."""
    reporter = next((p for p in pods if p.name == group.reporter and p.terminated is not None), None)
    return parse_report(reporter.terminated.message) if reporter and reporter.terminated else None


def _reporter_image_id(group: Group, pods: list[ObservedPod]) -> str | None:
    return next((p.image_id for p in pods if p.name == group.reporter and p.image_id), None)


def _success_message(group: Group, pods: list[ObservedPod]) -> str:
    report = _final_report(group, pods)
    detail = f": {report.message}" if report and report.message else ""
    return f"{group.success_noun} succeeded{detail}"


def _metrics(job: TrainingJob, report: TrainerReport | None) -> dict[str, float]:
    """The trainer's metrics, or, when it never reached the API server, the final report of
    rank 0 (or of the Ray driver)."""
    if job.status.metrics:
        return job.status.metrics
    return dict(report.metrics) if report else {}
