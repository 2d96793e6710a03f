"""A TrainingSweep and its trial jobs -> the sweep's new status, the trial jobs to create and the
pruned ones to delete (pure). The steps, in order:

1. observe: each recorded trial takes its job's state, live metric per epoch, final metric and
   GPU-hours; an ended trial is frozen.
2. prune (spec.pruning): a running trial whose live metric is behind the median of the other
   trials at the same epoch is ended as Pruned; its job is deleted, so its GPU-hours stop there.
3. launch: while fewer than parallelTrials run and trials are left, and the cost cap and the
   namespace budget leave room for one more trial's whole estimate, the next trial is drawn
   (plan/search.py) and recorded. The status is written before any job is created, and a trial's
   job name (<sweep>-t<index>) is fixed by its index, so a crash between the two creates the same
   job on the next reconcile instead of a new trial.
4. summarise: counts, best trial, cost, phase and reason, with an Event for each change.
5. release (spec.promoteBest): when the sweep succeeds, its best trial's job is woken; its
   reconcile finds the sweep's choice and judges it by its model's gates as any job."""

from __future__ import annotations

import json
import statistics
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from kubetrain.api.budget import Cost
from kubetrain.api.events import EventType
from kubetrain.api.job import ObjectMeta, TrainingJob
from kubetrain.api.nodepools import NodePoolCatalogue
from kubetrain.api.status import ConditionType, Phase, Reason
from kubetrain.api.sweep import (
    ACTIVE_TRIALS,
    BestTrial,
    Goal,
    PhaseCounts,
    PruningPolicy,
    SweepCost,
    SweepPhase,
    SweepReason,
    TrainingSweep,
    TrainingSweepSpec,
    TrainingSweepStatus,
    Trial,
    TrialState,
)
from kubetrain.plan.draft import Event
from kubetrain.plan.search import SearchSpaceError, grid_size, suggest
from kubetrain.policy.budget import BudgetFacts, budget_summary, estimate, judge_budget, used_gpu_hours
from kubetrain.render.trial import TrialSpecError, trial_job, trial_name, trial_spec

ENDED = (TrialState.SUCCEEDED, TrialState.FAILED, TrialState.PRUNED)
# Trial jobs wake the sweep on every change; these only bound how stale a missed wake-up leaves it.
RUNNING_REQUEUE_SECONDS = 15.0
WAITING_REQUEUE_SECONDS = 30.0
_WARNINGS = {SweepReason.INVALID_SWEEP, SweepReason.BUDGET_EXCEEDED, SweepReason.COST_CAP_REACHED,
             SweepReason.DEADLINE_REQUIRED}


class SweepPlan(BaseModel):
    model_config = ConfigDict(frozen=True)

    status: TrainingSweepStatus
    create: list[dict[str, Any]] = Field(default_factory=list, description="Trial jobs to create unless they exist.")
    delete: list[tuple[str, str]] = Field(default_factory=list, description="Pruned trial jobs: (name, uid).")
    release: str | None = Field(
        default=None, description="The best trial's job, whose reconcile to wake: its model's gates judge it now."
    )
    events: list[Event] = Field(default_factory=list)
    requeue_after: float | None = None


def plan_sweep(
    sweep: TrainingSweep,
    jobs: dict[str, dict[str, Any]],
    budget: BudgetFacts,
    catalogue: NodePoolCatalogue,
    now: datetime,
) -> SweepPlan:
    """`jobs`: the sweep's trial jobs by name, as read from the API server."""
    spec, old = sweep.spec, sweep.status
    events: list[Event] = []
    trials = [_observe(trial, jobs.get(trial.job), spec, now, events) for trial in old.trials]
    trials = [_prune(trial, trials, spec, events) for trial in trials]
    try:
        limit = min(spec.max_trials, grid_size(spec) or spec.max_trials)
        per_trial = estimate(spec.job_template.spec, catalogue)
        blocked = _launch(sweep, trials, per_trial, budget, catalogue, now, limit, events)
    except SearchSpaceError as exc:
        status = old.model_copy(update={
            "phase": SweepPhase.FAILED, "reason": SweepReason.INVALID_SWEEP, "message": str(exc), "trials": trials,
        })
        return SweepPlan(status=status, events=[*events, *_reason_event(old, status)])
    status = _summarise(sweep, trials, per_trial, limit, blocked, budget_summary(budget, catalogue, now))
    create = [
        trial_job(sweep, trial) for trial in trials if trial.state == TrialState.PENDING and trial.job not in jobs
    ]
    delete = [
        (trial.job, str(jobs[trial.job]["metadata"].get("uid", "")))
        for trial in trials
        if trial.state == TrialState.PRUNED and trial.job in jobs and not jobs[trial.job]["metadata"].get(
            "deletionTimestamp")
    ]
    active = status.counts.pending + status.counts.running
    requeue = RUNNING_REQUEUE_SECONDS if active else (
        WAITING_REQUEUE_SECONDS if status.phase == SweepPhase.WAITING else None)
    release = _release(sweep, old, status)
    if release is not None:
        events.append(Event(type=EventType.NORMAL, reason=SweepReason.BEST_SUBMITTED, message=(
            f"best trial {release} goes to model {_model(sweep)}'s gates")))
    return SweepPlan(status=status, create=create, delete=delete, release=release,
                     events=[*events, *_reason_event(old, status)], requeue_after=requeue)


def _model(sweep: TrainingSweep) -> str | None:
    model = sweep.spec.job_template.spec.model
    return model.name if model is not None else None


def _release(sweep: TrainingSweep, old: TrainingSweepStatus, new: TrainingSweepStatus) -> str | None:
    """When the sweep succeeds, under promoteBest with a model: its best trial's job, whose reconcile
    then finds (controller/promotion.py) that the sweep chose it. Once, on the transition; after
    an operator restart every job is reconciled anyway."""
    best = new.best
    if not sweep.spec.promote_best or _model(sweep) is None or best is None:
        return None
    return best.job if new.phase == SweepPhase.SUCCEEDED and old.phase != SweepPhase.SUCCEEDED else None


def _observe(trial: Trial, raw: dict[str, Any] | None, spec: TrainingSweepSpec, now: datetime,
             events: list[Event]) -> Trial:
    if trial.state in ENDED:
        return trial
    if raw is None:
        if trial.state == TrialState.PENDING:
            return trial  # recorded, its job not created yet: this reconcile creates it
        message = f"TrainingJob {trial.job} was deleted before it ended"
        events.append(Event(type=EventType.WARNING, reason=SweepReason.TRIAL_LOST, message=message))
        return trial.model_copy(update={"state": TrialState.FAILED, "message": message})
    try:
        job = TrainingJob.model_validate(raw)
    except ValidationError:
        return trial
    metric, status = spec.objective.metric, job.status
    update: dict[str, Any] = {"gpu_hours": round(used_gpu_hours(job.spec, status, now), 6)}
    progress = status.progress
    if progress is not None and progress.epoch is not None and metric in (progress.metrics or {}):
        update["intermediate"] = {**trial.intermediate, str(progress.epoch): (progress.metrics or {})[metric]}
    if status.phase == Phase.SUCCEEDED:
        value = status.metrics.get(metric)
        if value is None:
            update.update(state=TrialState.FAILED, message=f"succeeded without reporting {metric} (it reported "
                          f"{', '.join(sorted(status.metrics)) or 'no metrics'})")
        else:
            update.update(state=TrialState.SUCCEEDED, value=value)
    elif status.phase == Phase.FAILED:
        failed = next((c for c in status.conditions if c.type == ConditionType.FAILED), None)
        update.update(state=TrialState.FAILED, message=f"{failed.reason}: {failed.message}" if failed else "failed")
    elif status.phase in (Phase.RUNNING, Phase.STARTING, Phase.RESTARTING):
        update["state"] = TrialState.RUNNING
    observed = trial.model_copy(update=update)
    if observed.state in ENDED:
        ok = observed.state == TrialState.SUCCEEDED
        outcome = f"{metric} {observed.value:g}" if ok else str(observed.message)
        events.append(Event(type=EventType.NORMAL if ok else EventType.WARNING, reason=SweepReason.TRIAL_FINISHED,
                            message=f"trial {trial.index} ({trial.job}) {observed.state.value.lower()}: {outcome}"))
    return observed


def _prune(trial: Trial, trials: list[Trial], spec: TrainingSweepSpec, events: list[Event]) -> Trial:
    """Median pruning: compared at its latest reported epoch past the warm-up, with every other
    trial that reported that epoch (running or ended), once at least pruning.minTrials did."""
    pruning = spec.pruning
    if pruning.policy == PruningPolicy.NONE or trial.state != TrialState.RUNNING or not trial.intermediate:
        return trial
    epoch = max(trial.intermediate, key=int)
    if int(epoch) <= pruning.warmup_epochs:
        return trial
    others = [t.intermediate[epoch] for t in trials if t.index != trial.index and epoch in t.intermediate]
    if len(others) < pruning.min_trials:
        return trial
    value, median = trial.intermediate[epoch], statistics.median(others)
    behind = value < median if spec.objective.goal == Goal.MAXIMIZE else value > median
    if not behind:
        return trial
    message = (f"{spec.objective.metric} {value:g} at epoch {epoch} is behind the median {median:g} of "
               f"{len(others)} other trials there")
    events.append(Event(type=EventType.NORMAL, reason=SweepReason.TRIAL_PRUNED,
                        message=f"trial {trial.index} ({trial.job}) pruned: {message}"))
    return trial.model_copy(update={"state": TrialState.PRUNED, "message": message})


def _committed(trials: list[Trial], per_trial: float) -> float:
    """GPU-hours spent by ended trials plus the whole estimate of active ones (they may use it all)."""
    return sum(t.gpu_hours if t.state in ENDED else max(t.gpu_hours, per_trial) for t in trials)


def _launch(
    sweep: TrainingSweep, trials: list[Trial], per_trial: Cost, budget: BudgetFacts, catalogue: NodePoolCatalogue,
    now: datetime, limit: int, events: list[Event],
) -> tuple[SweepReason, str] | None:
    """Records new trials in `trials` while they may start; returns what holds the next one back
    (None: nothing but parallelTrials or maxTrials)."""
    spec, name = sweep.spec, sweep.metadata.name
    while sum(t.state in ACTIVE_TRIALS for t in trials) < spec.parallel_trials and len(trials) < limit:
        blocked = _held_back(sweep, trials, per_trial, budget, catalogue, now)
        if blocked is not None:
            return blocked
        index = len(trials)
        parameters = suggest(spec, trials, index)
        trial = Trial(index=index, job=trial_name(name, index), parameters=parameters)
        try:
            trial_spec(spec, parameters, trial.job)
        except TrialSpecError as exc:
            trials.append(trial.model_copy(update={"state": TrialState.FAILED, "message": str(exc)}))
            events.append(Event(type=EventType.WARNING, reason=SweepReason.TRIAL_REFUSED,
                                message=f"trial {index}: {exc}"))
            continue
        trials.append(trial)
        events.append(Event(type=EventType.NORMAL, reason=SweepReason.TRIAL_CREATED,
                            message=f"trial {index} ({trial.job}): {json.dumps(parameters)}"))
    return None


def _held_back(
    sweep: TrainingSweep, trials: list[Trial], per_trial: Cost, budget: BudgetFacts, catalogue: NodePoolCatalogue,
    now: datetime,
) -> tuple[SweepReason, str] | None:
    cap, hours = sweep.spec.max_gpu_hours, per_trial.estimated_gpu_hours
    if cap is not None and hours is None:
        return SweepReason.DEADLINE_REQUIRED, (
            "spec.jobTemplate.spec.runPolicy.activeDeadlineSeconds is required with spec.maxGpuHours: a trial's GPU "
            "time has no bound without it; set it to the longest a trial may run")
    if cap is not None and hours is not None:
        committed = _committed(trials, hours)
        if committed + hours > cap + 1e-9:
            return SweepReason.COST_CAP_REACHED, (
                f"maxGpuHours {cap:g}: {committed:.4g} GPU-hours spent or held by running trials, and the next trial "
                f"may use {hours:.4g}; no further trial is launched")
    candidate = TrainingJob(
        metadata=ObjectMeta(name=trial_name(sweep.metadata.name, len(trials)), namespace=sweep.metadata.namespace),
        spec=sweep.spec.job_template.spec,
    )
    verdict = judge_budget(candidate, budget, catalogue, now)
    if not verdict.allowed:
        reason = SweepReason.DEADLINE_REQUIRED if verdict.reason == Reason.DEADLINE_REQUIRED else \
            SweepReason.BUDGET_EXCEEDED
        return reason, f"the next trial does not fit the namespace budget: {verdict.message}"
    return None


def _summarise(
    sweep: TrainingSweep, trials: list[Trial], per_trial: Cost, limit: int,
    blocked: tuple[SweepReason, str] | None, budget_line: str,
) -> TrainingSweepStatus:
    spec = sweep.spec
    counts = count_trials(trials)
    active = counts.pending + counts.running
    best = _best(spec, trials)
    hours, cap = per_trial.estimated_gpu_hours, spec.max_gpu_hours
    cost = SweepCost(
        trial_gpu_hours=hours,
        estimated_gpu_hours=round(hours * limit, 6) if hours is not None else None,
        estimated_cost=round(per_trial.estimated_cost * limit, 6) if per_trial.estimated_cost is not None else None,
        spent_gpu_hours=round(sum(t.gpu_hours for t in trials), 6),
        remaining_gpu_hours=round(max(cap - _committed(trials, hours or 0.0), 0.0), 6) if cap is not None else None,
        budget=budget_line,
    )
    ended = len(trials) >= limit or (blocked is not None and blocked[0] != SweepReason.BUDGET_EXCEEDED)
    if ended and not active:
        outcome = (f"best trial {best.index} ({best.job}): {spec.objective.metric} {best.value:g} with "
                   f"{json.dumps(best.parameters)}") if best is not None else "no trial succeeded"
        reason = blocked[0] if blocked is not None else SweepReason.COMPLETED
        message = f"{len(trials)} trials ended; {outcome}" + (f" ({blocked[1]})" if blocked is not None else "")
        phase = SweepPhase.SUCCEEDED if best is not None else SweepPhase.FAILED
    elif blocked is not None:
        phase = SweepPhase.RUNNING if active else SweepPhase.WAITING
        reason, message = blocked
    else:
        phase, reason = SweepPhase.RUNNING, SweepReason.SEARCHING
        message = f"{active} trials active; {len(trials)} of {limit} launched"
    return TrainingSweepStatus(
        phase=phase, reason=reason, message=message, trials=trials, counts=counts,
        completed=f"{counts.succeeded + counts.failed + counts.pruned}/{limit}", best=best, cost=cost,
        observed_generation=sweep.metadata.generation,
    )


def count_trials(trials: list[Trial]) -> PhaseCounts:
    return PhaseCounts(**{state.value.lower(): sum(t.state == state for t in trials) for state in TrialState})


def _best(spec: TrainingSweepSpec, trials: list[Trial]) -> BestTrial | None:
    scored = [t for t in trials if t.state == TrialState.SUCCEEDED and t.value is not None]
    if not scored:
        return None
    sign = 1.0 if spec.objective.goal == Goal.MAXIMIZE else -1.0
    top = max(scored, key=lambda t: (sign * (t.value or 0.0), -t.index))
    return BestTrial(index=top.index, job=top.job, parameters=top.parameters, value=top.value or 0.0)


def _reason_event(old: TrainingSweepStatus, new: TrainingSweepStatus) -> list[Event]:
    if (old.phase, old.reason) == (new.phase, new.reason) or new.reason is None:
        return []
    kind = EventType.WARNING if new.reason in _WARNINGS or new.phase == SweepPhase.FAILED else EventType.NORMAL
    return [Event(type=kind, reason=new.reason, message=f"{new.phase}: {new.message}"[:1024])]


def refused(status: TrainingSweepStatus, job: str, message: str) -> TrainingSweepStatus:
    """The status once the API server refused to create a trial's job (an admission webhook: a
    residency or budget policy): the trial fails with the refusal, and the next one is drawn."""
    trials = [
        t.model_copy(update={"state": TrialState.FAILED, "message": f"refused: {message}"}) if t.job == job else t
        for t in status.trials
    ]
    return status.model_copy(update={"trials": trials, "counts": count_trials(trials)})

