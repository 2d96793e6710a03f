"""Observed children + the job's status -> the job's new status and the actions that move the
cluster towards it. Pure: the decision depends only on its inputs, so re-planning the same state
(after an operator restart, or a partly applied plan) never double-counts a restart."""

from __future__ import annotations

from datetime import datetime, timedelta

from kubetrain.api.contract import WORKER_ROLE
from kubetrain.api.job import TrainingJob
from kubetrain.api.nodepools import NodePoolCatalogue
from kubetrain.api.spec import CleanPodPolicy
from kubetrain.api.status import ConditionType as C
from kubetrain.policy.budget import BudgetVerdict
from kubetrain.policy.verdict import ALLOW_ALL, Verdict
from kubetrain.render.errors import summarize
from kubetrain.render.names import service_name, worker_name
from kubetrain.render.pytorch import render_pytorch
from kubetrain.render.settings import RenderSettings
from kubetrain.render.validate import validate_spec
from kubetrain.status.draft import Draft, Plan
from kubetrain.status.budget import apply_budget
from kubetrain.status.failures import Failure, failure_of, first_failure, missing
from kubetrain.status.observed import Observed, ObservedPod
from kubetrain.status.promotion import PromotionFacts, apply_promotion
from kubetrain.status.provenance import cost, provenance
from kubetrain.status.replicas import replica_status
from kubetrain.status.residency import apply_residency
from kubetrain.status.report import TrainerReport, parse_report


def plan(
    job: TrainingJob,
    observed: Observed,
    catalogue: NodePoolCatalogue,
    settings: RenderSettings,
    now: datetime,
    residency: Verdict = ALLOW_ALL,
    budget: BudgetVerdict | None = None,
    promotion: PromotionFacts | None = None,
) -> Plan:
    """`residency` is the verdict of the namespace's DataResidencyPolicies on this job, evaluated
    by the caller from fresh policies on every reconcile (they change after admission). `budget`
    (judged before the job first starts) and `promotion` (after it succeeded) are given by the
    caller only when needed; None leaves that part of the status as it is."""
    # Whole seconds, like metav1.Time, so a status written and read back compares equal.
    draft = Draft.start(job, now.replace(microsecond=0))
    draft.allowed_regions = residency.regions
    current = _current_attempt(job, observed.pods, draft.restarts)
    if not draft.finished():
        errors = validate_spec(job, catalogue)
        if errors:
            draft.set(C.FAILED, True, "InvalidSpec", summarize(errors))
        elif not apply_residency(draft, residency):
            draft.delete([p.name for p in observed.pods if not p.deleting])
        elif job.spec.run_policy.suspend:
            _suspend(draft, observed)
        elif apply_budget(draft, budget):
            _run(draft, observed, current, catalogue, settings)
    if draft.finished():
        _finish(draft, observed)
    elif (deadline := _deadline(draft)) is not None:
        draft.requeue_after = (deadline - draft.now).total_seconds()
    report = _rank0_report(current)
    metrics = _metrics(job, report)
    image = job.spec.image or settings.default_image
    draft.provenance = provenance(draft, report, image, _rank0_image_id(current))
    draft.cost = cost(draft, catalogue)
    if promotion is not None:
        apply_promotion(draft, promotion, metrics, draft.provenance)
    replicas = replica_status(_current_attempt(job, observed.pods, draft.restarts))
    return draft.to_plan(replicas, metrics)


def _current_attempt(job: TrainingJob, pods: list[ObservedPod], attempt: int) -> list[ObservedPod]:
    return [p for p in pods if _in_attempt(job, p, attempt)]


def _in_attempt(job: TrainingJob, pod: ObservedPod, attempt: int) -> bool:
    """Only a pod with exactly the name, role, index and attempt this attempt would render
    belongs to it; anything else the job owns is a leftover to delete."""
    index = pod.index
    return (
        pod.role == WORKER_ROLE
        and pod.attempt == attempt
        and index is not None
        and index < job.spec.workers
        and pod.name == worker_name(job.metadata.name, index)
    )


def _suspend(draft: Draft, observed: Observed) -> None:
    message = "runPolicy.suspend is true: the workers are deleted and the job is held"
    draft.set(C.SUSPENDED, True, "Suspended", message)
    for type_ in (C.CREATED, C.RUNNING, C.RESTARTING):
        draft.close(type_, "Suspended", message)
    # Like a Kubernetes Job: the activeDeadlineSeconds clock starts again on resume.
    draft.start_time = None
    draft.delete([p.name for p in observed.pods if not p.deleting])


def _run(
    draft: Draft, observed: Observed, current: list[ObservedPod], catalogue: NodePoolCatalogue, settings: RenderSettings
) -> None:
    job, policy = draft.job, draft.job.spec.run_policy
    if draft.is_true(C.SUSPENDED):
        draft.set(C.SUSPENDED, False, "Resumed", "runPolicy.suspend is false: the workers are started again")
    mine = {p.name for p in current}
    draft.delete([p.name for p in observed.pods if p.name not in mine and not p.deleting])
    deadline = _deadline(draft)
    if deadline is not None and draft.now >= deadline:
        draft.set(
            C.FAILED,
            True,
            "DeadlineExceeded",
            f"the job ran longer than runPolicy.activeDeadlineSeconds ({policy.active_deadline_seconds}s)",
        )
        draft.delete([p.name for p in current if not p.finished and not p.deleting])
        return
    failure = first_failure(_failures(draft, current))
    if failure is not None:
        _fail_or_restart(draft, failure, current)
        return
    live = [p for p in current if not p.deleting]
    if len(live) == job.spec.workers and all(p.phase == "Succeeded" for p in live):
        draft.set(C.SUCCEEDED, True, "AllWorkersSucceeded", _success_message(live))
        return
    _start(draft, observed, live, catalogue, settings)


def _failures(draft: Draft, current: list[ObservedPod]) -> list[Failure]:
    """Before every worker of the attempt has been seen (Created is not true) a deleted or
    missing pod is not a failure: it may be one the operator deleted on suspension, still
    terminating, and it is simply created (again) once gone."""
    created = draft.is_true(C.CREATED)
    failures = [f for p in current if (created or not p.deleting) and (f := failure_of(p)) is not None]
    if created:
        present = {p.index for p in current}
        failures += [
            missing(worker_name(draft.job.metadata.name, i)) for i in range(draft.job.spec.workers) if i not in present
        ]
    return failures


def _fail_or_restart(draft: Draft, failure: Failure, current: list[ObservedPod]) -> None:
    limit = draft.job.spec.run_policy.backoff_limit
    if failure.permanent:
        draft.set(C.FAILED, True, failure.reason, f"{failure.message} (not retried: a restart cannot fix it)")
        return
    if draft.restarts >= limit:
        draft.set(
            C.FAILED,
            True,
            "BackoffLimitExceeded",
            f"{failure.message}; runPolicy.backoffLimit ({limit}) whole-group restarts already used",
        )
        return
    draft.restarts += 1
    message = f"{failure.message}; restarting every worker (restart {draft.restarts} of at most {limit})"
    draft.set(C.RESTARTING, True, failure.reason, message)
    draft.close(C.RUNNING, "Restarting", message)
    draft.close(C.CREATED, "Restarting", message)
    draft.delete([p.name for p in current if not p.deleting])


def _start(
    draft: Draft, observed: Observed, live: list[ObservedPod], catalogue: NodePoolCatalogue, settings: RenderSettings
) -> None:
    """Creates what is missing; Created and Running are all-or-nothing over the workers."""
    job, workers = draft.job, draft.job.spec.workers
    desired = render_pytorch(job, catalogue, settings, draft.allowed_regions)
    if service_name(job.metadata.name) not in observed.service_names:
        draft.create.append(desired.service)
    taken = {p.name for p in observed.pods}
    pods = [pod for pod in desired.pods if pod["metadata"]["name"] not in taken]
    if pods:
        # Created if missing (the controller ignores AlreadyExists), before the pods that use them.
        draft.create.extend(desired.access)
    draft.create.extend(pods)
    if pods and draft.start_time is None:
        draft.start_time = draft.now
    attempt = f"attempt {draft.restarts}"
    if len(live) == workers:
        draft.set(C.CREATED, True, "AllWorkersCreated", f"all {workers} workers of {attempt} exist")
    if len(live) == workers and all(p.phase == "Running" for p in live):
        message = f"all {workers} workers of {attempt} are running"
        draft.set(C.RUNNING, True, "AllWorkersRunning", message)
        draft.close(C.RESTARTING, "AllWorkersRunning", message)


def _finish(draft: Draft, observed: Observed) -> None:
    """cleanPodPolicy and ttlSecondsAfterFinished; the outcome conditions are already set."""
    policy = draft.job.spec.run_policy
    outcome = "Succeeded" if draft.is_true(C.SUCCEEDED) else "Failed"
    for type_ in (C.RUNNING, C.RESTARTING):
        draft.close(type_, outcome, f"the job has {outcome.lower()}")
    if draft.completion_time is None:
        draft.completion_time = draft.now
    if policy.clean_pod_policy == CleanPodPolicy.ALL:
        draft.delete([p.name for p in observed.pods if not p.deleting])
    elif policy.clean_pod_policy == CleanPodPolicy.RUNNING:
        draft.delete([p.name for p in observed.pods if not p.deleting and not p.finished])
    if policy.ttl_seconds_after_finished is not None:
        expiry = draft.completion_time + timedelta(seconds=policy.ttl_seconds_after_finished)
        if draft.now >= expiry:
            draft.delete_job = True
        else:
            draft.requeue_after = (expiry - draft.now).total_seconds()


def _deadline(draft: Draft) -> datetime | None:
    seconds = draft.job.spec.run_policy.active_deadline_seconds
    if seconds is None or draft.start_time is None:
        return None
    return draft.start_time + timedelta(seconds=seconds)


def _rank0_report(pods: list[ObservedPod]) -> TrainerReport | None:
    rank0 = next((p for p in pods if p.index == 0 and p.terminated is not None), None)
    return parse_report(rank0.terminated.message) if rank0 and rank0.terminated else None


def _rank0_image_id(pods: list[ObservedPod]) -> str | None:
    return next((p.image_id for p in pods if p.index == 0 and p.image_id), None)


def _success_message(pods: list[ObservedPod]) -> str:
    report = _rank0_report(pods)
    detail = f": {report.message}" if report and report.message else ""
    return f"all {len(pods)} workers succeeded{detail}"


def _metrics(job: TrainingJob, report: TrainerReport | None) -> dict[str, float]:
    """The trainer's metrics, or, when it never reached the API server, rank 0's final report."""
    if job.status.metrics:
        return job.status.metrics
    return dict(report.metrics) if report else {}
