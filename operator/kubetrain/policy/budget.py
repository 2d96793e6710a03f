"""GPU budgets, decided purely: a job's estimated cost, what the other jobs of its namespace have
used (or hold) in the current period, and whether the job fits in what the BudgetPolicies
selecting the namespace leave. The webhook and the reconcile fetch the facts and call this."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from kubetrain.api.budget import BudgetAction, BudgetPeriod, BudgetPolicy, Cost
from kubetrain.api.job import TrainingJob
from kubetrain.api.nodepools import NodePoolCatalogue
from kubetrain.api.spec import TrainingJobSpec
from kubetrain.api.status import ConditionStatus, ConditionType, Reason, TrainingJobStatus
from kubetrain.policy.residency.match import selects

HOUR = 3600.0


class BudgetFacts(BaseModel):
    """The cluster state one budget decision needs, fetched by the caller."""

    model_config = ConfigDict(frozen=True)

    namespace: str
    namespace_labels: dict[str, str] = Field(default_factory=dict)
    policies: list[dict[str, Any]] = Field(default_factory=list, description="Raw BudgetPolicy objects.")
    jobs: list[dict[str, Any]] = Field(default_factory=list, description="Raw TrainingJobs of the namespace.")


class BudgetVerdict(BaseModel):
    model_config = ConfigDict(frozen=True)

    allowed: bool
    reason: str = Field(description="WithinBudget, NoBudget, BudgetExceeded or DeadlineRequired.")
    message: str
    queue: bool = Field(
        default=False,
        description="Refused for now: every policy that refuses it queues (onExhaustion Queue), so the job "
        "waits instead of failing.",
    )
    retry_at: datetime | None = Field(
        default=None, description="A queued job's earliest chance: when the first refusing policy's period renews."
    )


def gpus(spec: TrainingJobSpec) -> int:
    return spec.workers * spec.resources.gpus


def cost_bound_raised(old: TrainingJob, new: TrainingJob) -> bool:
    """Whether an update raises the most the job can cost: more GPUs in all (spec.workers or
    resources.gpus) or a longer or removed runPolicy.activeDeadlineSeconds."""
    def bound(spec: TrainingJobSpec) -> float:
        deadline = spec.run_policy.active_deadline_seconds
        return math.inf if deadline is None else float(deadline)

    return gpus(new.spec) > 0 and (gpus(new.spec) > gpus(old.spec) or bound(new.spec) > bound(old.spec))


def estimate(spec: TrainingJobSpec, catalogue: NodePoolCatalogue) -> Cost:
    """The most the job can cost; GPU-hours are unbounded (None) without activeDeadlineSeconds."""
    pool = catalogue.pools.get(spec.node_pool or "")
    price = pool.price_per_gpu_hour if pool is not None else None
    deadline = spec.run_policy.active_deadline_seconds
    hours = 0.0 if gpus(spec) == 0 else (gpus(spec) * deadline / HOUR if deadline is not None else None)
    return Cost(
        estimated_gpu_hours=_round(hours),
        price_per_gpu_hour=price,
        estimated_cost=_round(hours * price) if hours is not None and price is not None else None,
    )


def used_gpu_hours(
    spec: TrainingJobSpec, status: TrainingJobStatus, now: datetime, since: datetime | None = None
) -> float:
    """GPU-hours consumed from status.startTime to status.completionTime (now while running),
    counting only the part after `since`."""
    start, end = status.start_time, status.completion_time or now
    if start is None or gpus(spec) == 0:
        return 0.0
    if since is not None:
        start = max(start, since)
    return max((end - start).total_seconds(), 0.0) * gpus(spec) / HOUR


def with_usage(cost: Cost, used: float) -> Cost:
    price = cost.price_per_gpu_hour
    return cost.model_copy(
        update={"used_gpu_hours": _round(used), "used_cost": _round(used * price) if price is not None else None}
    )


def period_start(period: BudgetPeriod, now: datetime) -> datetime:
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == BudgetPeriod.DAY:
        return day
    if period == BudgetPeriod.WEEK:
        return day - timedelta(days=day.weekday())
    return day.replace(day=1)


def next_period_start(period: BudgetPeriod, now: datetime) -> datetime:
    """When the budget of the period holding `now` renews."""
    start = period_start(period, now)
    if period == BudgetPeriod.DAY:
        return start + timedelta(days=1)
    if period == BudgetPeriod.WEEK:
        return start + timedelta(weeks=1)
    return (start + timedelta(days=32)).replace(day=1)


def charged(raw: dict[str, Any], catalogue: NodePoolCatalogue, now: datetime, since: datetime) -> float:
    """What one job counts against its namespace's budget in the period from `since`: a finished
    job what it used; a job admitted to run (BudgetAvailable) and not finished its whole estimate,
    because it may still use all of it; a job not yet admitted, or refused, nothing."""
    try:
        job = TrainingJob.model_validate(raw)
    except ValidationError:
        return 0.0
    status = job.status
    used = used_gpu_hours(job.spec, status, now, since)
    true = {c.type for c in status.conditions if c.status == ConditionStatus.TRUE}
    if ConditionType.SUCCEEDED in true or ConditionType.FAILED in true:
        return used
    if ConditionType.BUDGET_AVAILABLE not in true:
        return 0.0
    reserved = estimate(job.spec, catalogue).estimated_gpu_hours
    return max(used, reserved) if reserved is not None else used


class Waiting(BaseModel):
    """An older job of the namespace still waiting for its budget verdict, and what it needs."""

    model_config = ConfigDict(frozen=True)

    name: str
    needed: float


def _order(job: TrainingJob) -> tuple[datetime, str] | None:
    created = job.metadata.creation_timestamp
    return None if created is None else (created, job.metadata.name)


def waiting_ahead(job: TrainingJob, facts: BudgetFacts, catalogue: NodePoolCatalogue) -> list[Waiting]:
    """The namespace's jobs created before `job` (one not created yet comes last) that wait for
    their budget: queued, or not judged yet, neither started nor suspended nor finished, with a
    bounded GPU cost. First come, first served: `job` fits only if they fit before it, so a small
    job does not overtake a big one for ever, and two jobs judged at once cannot both take the
    same GPU-hours (the younger counts the older whether or not its verdict is written yet)."""
    mine = _order(job)
    ahead = []
    for raw in facts.jobs:
        try:
            other = TrainingJob.model_validate(raw)
        except ValidationError:
            continue
        order = _order(other)
        if other.metadata.uid == job.metadata.uid or order is None or (mine is not None and order >= mine):
            continue
        status, spec = other.status, other.spec
        true = {c.type for c in status.conditions if c.status == ConditionStatus.TRUE}
        if true & {ConditionType.SUCCEEDED, ConditionType.FAILED, ConditionType.BUDGET_AVAILABLE}:
            continue
        needed = estimate(spec, catalogue).estimated_gpu_hours
        if status.start_time is not None or spec.run_policy.suspend or not needed:
            continue
        ahead.append(Waiting(name=other.metadata.name, needed=needed))
    return ahead


def judge_budget(job: TrainingJob, facts: BudgetFacts, catalogue: NodePoolCatalogue, now: datetime) -> BudgetVerdict:
    """Every BudgetPolicy selecting the namespace must leave room for the job's whole estimate,
    after the older jobs waiting for theirs (waiting_ahead) that could ever fit it. A policy the
    operator cannot read refuses GPU jobs (fail closed)."""
    needed = estimate(job.spec, catalogue).estimated_gpu_hours
    namespace = facts.namespace
    waiting = waiting_ahead(job, facts, catalogue) if gpus(job.spec) > 0 else []
    refusals: list[str] = []
    renewals: list[datetime] = []  # of the refusing policies that queue
    selected = 0
    for raw in facts.policies:
        name = str((raw.get("metadata") or {}).get("name", "?"))
        try:
            policy = BudgetPolicy.model_validate(raw)
        except ValidationError as exc:
            refusals.append(f"BudgetPolicy {name} cannot be read ({exc.errors()[0]['msg']}); ask the admin to fix it")
            continue
        if not selects(policy.spec, namespace, facts.namespace_labels):
            continue
        selected += 1
        if needed is None:
            return BudgetVerdict(
                allowed=False,
                reason=Reason.DEADLINE_REQUIRED,
                message=f"spec.runPolicy.activeDeadlineSeconds is required: the job requests {gpus(job.spec)} GPUs "
                f"in namespace {namespace}, whose GPU-hours BudgetPolicy {name} limits, and without a deadline its "
                "cost has no bound; set it to the longest the job may run (e.g. 3600)",
            )
        if needed > policy.spec.gpu_hours + 1e-9:
            refusals.append(_never_fits(policy, job, needed))
            continue
        ahead = [w for w in waiting if w.needed <= policy.spec.gpu_hours + 1e-9]  # the others never start
        refusal = _room(policy, job, facts, catalogue, now, needed, ahead)
        if refusal is not None:
            refusals.append(refusal)
            if policy.spec.on_exhaustion == BudgetAction.QUEUE:
                renewals.append(next_period_start(policy.spec.period, now))
    if refusals and gpus(job.spec) > 0:
        queue = len(renewals) == len(refusals)
        return BudgetVerdict(
            allowed=False, reason=Reason.BUDGET_EXCEEDED, message="; ".join(refusals), queue=queue,
            retry_at=min(renewals) if queue else None,
        )
    if not selected:
        return BudgetVerdict(
            allowed=True, reason=Reason.NO_BUDGET, message=f"no BudgetPolicy selects namespace {namespace}"
        )
    return BudgetVerdict(
        allowed=True,
        reason=Reason.WITHIN_BUDGET,
        message=f"needs up to {_hours(needed or 0.0)} GPU-hours; within budget",
    )


def budget_left(
    policy: BudgetPolicy, facts: BudgetFacts, catalogue: NodePoolCatalogue, now: datetime, exclude_uid: str = ""
) -> tuple[datetime, float, float]:
    """The policy's current period start, the GPU-hours the namespace's jobs (but the one of uid
    `exclude_uid`) used or hold in it, and what is left."""
    since = period_start(policy.spec.period, now)
    others = [j for j in facts.jobs if not exclude_uid or (j.get("metadata") or {}).get("uid") != exclude_uid]
    used = sum(charged(j, catalogue, now, since) for j in others)
    return since, used, max(policy.spec.gpu_hours - used, 0.0)


def budget_summary(facts: BudgetFacts, catalogue: NodePoolCatalogue, now: datetime) -> str:
    """Which budgets the namespace draws on and what they leave, for a status line: "BudgetPolicy
    team-risk: 3.5 of 10 GPU-hours left this month", or that none selects it."""
    lines = []
    for raw in facts.policies:
        try:
            policy = BudgetPolicy.model_validate(raw)
        except ValidationError:
            lines.append(f"BudgetPolicy {(raw.get('metadata') or {}).get('name', '?')} cannot be read (it refuses "
                         "GPU jobs until fixed)")
            continue
        if selects(policy.spec, facts.namespace, facts.namespace_labels):
            _, _, remaining = budget_left(policy, facts, catalogue, now)
            lines.append(f"BudgetPolicy {policy.metadata.name}: {_hours(remaining)} of {_hours(policy.spec.gpu_hours)} "
                         f"GPU-hours left this {policy.spec.period.value.lower()}")
    return "; ".join(lines) or f"no BudgetPolicy selects namespace {facts.namespace}"


def _room(
    policy: BudgetPolicy, job: TrainingJob, facts: BudgetFacts, catalogue: NodePoolCatalogue, now: datetime,
    needed: float, ahead: list[Waiting],
) -> str | None:
    since, used, remaining = budget_left(policy, facts, catalogue, now, exclude_uid=job.metadata.uid)
    queued = sum(w.needed for w in ahead)
    if needed + queued <= remaining + 1e-9:
        return None
    spec = job.spec
    first = ""
    if queued and needed <= remaining + 1e-9:
        names = ", ".join(w.name for w in ahead[:3]) + (", ..." if len(ahead) > 3 else "")
        first = (f"; {len(ahead)} older job(s) waiting for this budget go first ({names}: up to {_hours(queued)} "
                 "GPU-hours)")
    return (
        f"BudgetPolicy {policy.metadata.name}: namespace {facts.namespace} has {_hours(remaining)} of "
        f"{_hours(policy.spec.gpu_hours)} GPU-hours left this {policy.spec.period.value.lower()} (since "
        f"{since:%Y-%m-%d}; {_hours(used)} used or held by other jobs){first}, and the job needs up to "
        f"{_hours(needed)} ({_shape(spec)}); lower workers, gpus or activeDeadlineSeconds, or wait for running jobs "
        "to finish"
    )


def _never_fits(policy: BudgetPolicy, job: TrainingJob, needed: float) -> str:
    return (
        f"BudgetPolicy {policy.metadata.name}: the job needs up to {_hours(needed)} GPU-hours ({_shape(job.spec)}), "
        f"more than the whole budget of {_hours(policy.spec.gpu_hours)} GPU-hours per "
        f"{policy.spec.period.value.lower()}, so it can never fit; lower workers, gpus or activeDeadlineSeconds, "
        "or ask for a larger budget"
    )


def _shape(spec: TrainingJobSpec) -> str:
    return (f"{spec.workers} workers x {spec.resources.gpus} GPUs x {spec.run_policy.active_deadline_seconds}s "
            "activeDeadlineSeconds")


class BudgetUsage(BaseModel):
    """One BudgetPolicy's account of one namespace in the current period, as the metrics show it."""

    model_config = ConfigDict(frozen=True)

    policy: str
    namespace: str
    gpu_hours: float = Field(description="The policy's GPU-hours per period.")
    used: float = Field(description="GPU-hours the namespace's jobs consumed since the period began.")
    remaining: float = Field(description="What admission would still grant: the budget less what is used or held.")


def budget_usage(facts: BudgetFacts, catalogue: NodePoolCatalogue, now: datetime) -> list[BudgetUsage]:
    """Every readable BudgetPolicy selecting the namespace, with what its jobs used in the period
    and what is left of it, counted as judge_budget counts (admitted jobs hold their estimate)."""
    usages = []
    for raw in facts.policies:
        try:
            policy = BudgetPolicy.model_validate(raw)
        except ValidationError:
            continue  # judge_budget names it on every refusal; a metric has no words for it
        if not selects(policy.spec, facts.namespace, facts.namespace_labels):
            continue
        since, _, remaining = budget_left(policy, facts, catalogue, now)
        used = sum(job_used_gpu_hours(job, now, since) for job in facts.jobs)
        usages.append(BudgetUsage(
            policy=policy.metadata.name, namespace=facts.namespace, gpu_hours=policy.spec.gpu_hours,
            used=used, remaining=remaining,
        ))
    return usages


def job_used_gpu_hours(raw: dict[str, Any], now: datetime, since: datetime | None = None) -> float:
    """used_gpu_hours of a job as the API returns it; 0 for one that never started (without
    validating it: metrics ask at every scrape) or that does not validate."""
    if not (raw.get("status") or {}).get("startTime"):
        return 0.0
    try:
        job = TrainingJob.model_validate(raw)
    except ValidationError:
        return 0.0
    return used_gpu_hours(job.spec, job.status, now, since)


def _hours(value: float) -> str:
    return f"{value:.4g}"


def _round(value: float | None) -> float | None:
    return round(value, 6) if value is not None else None
