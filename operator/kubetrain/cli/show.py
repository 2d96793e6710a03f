"""How the job verbs print jobs: plain-text tables and lines, pure functions of the API models
and a clock, so they are unit-tested without a cluster and the output reads the same in a
terminal, a CI log or a pipe."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from kubetrain.api.budget import Cost
from kubetrain.api.job import TrainingJob
from kubetrain.api.status import Condition, ConditionStatus, Phase
from kubetrain.client.submit import Preview
from kubetrain.policy.residency.verdict import ResidencyVerdict

BAR_WIDTH = 20
METRICS_SHOWN = 3
JOB_COLUMNS = ("NAME", "PHASE", "PROGRESS", "METRICS", "REASON", "AGE")


def table(rows: Sequence[Sequence[str]]) -> list[str]:
    """Columns padded to their widest cell, two spaces apart, as kubectl prints them."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]


def percent(job: TrainingJob) -> float | None:
    """Training done, in percent: the trainer's own figure, else steps or epochs done; 100 once
    the job succeeded; None before any report."""
    if job.status.phase == Phase.SUCCEEDED:
        return 100.0
    progress = job.status.progress
    if progress is None:
        return None
    if progress.percent is not None:
        return progress.percent
    if progress.step is not None and progress.total_steps:
        return 100.0 * progress.step / progress.total_steps
    if progress.epoch is not None and progress.total_epochs:
        return 100.0 * progress.epoch / progress.total_epochs
    return None


def bar(value: float | None, width: int = BAR_WIDTH) -> str:
    """`[#####...............]  25%`; dots only when nothing was reported yet."""
    if value is None:
        return f"[{'.' * width}]    -"
    filled = round(min(max(value, 0.0), 100.0) * width / 100)
    return f"[{'#' * filled}{'.' * (width - filled)}] {value:3.0f}%"


def progress_text(job: TrainingJob) -> str:
    progress = job.status.progress
    text = bar(percent(job))
    if progress is not None and progress.epoch is not None and progress.total_epochs:
        text += f" epoch {progress.epoch}/{progress.total_epochs}"
    return text


def latest_metrics(job: TrainingJob) -> dict[str, float]:
    """The final metrics once written, else the live ones the training code reported."""
    status = job.status
    if status.metrics:
        return dict(status.metrics)
    return dict(status.progress.metrics or {}) if status.progress is not None else {}


def metrics_text(metrics: dict[str, float], limit: int | None = METRICS_SHOWN) -> str:
    shown = sorted(metrics.items())[:limit]
    text = " ".join(f"{key}={value:.4g}" for key, value in shown)
    hidden = len(metrics) - len(shown)
    return (text + (f" (+{hidden})" if hidden else "")) or "-"


def explaining(job: TrainingJob) -> Condition | None:
    """The condition that explains the phase: the one named after it (Failed for a failed job),
    else the one that changed last."""
    conditions = job.status.conditions
    named = [c for c in conditions if c.type == job.status.phase.value and c.status == ConditionStatus.TRUE]
    if named:
        return named[0]
    return max(conditions, key=lambda c: c.last_transition_time, default=None)


def reason(job: TrainingJob) -> str:
    condition = explaining(job)
    return condition.reason if condition is not None else "-"


def age(since: datetime | None, now: datetime) -> str:
    """kubectl's short age: 42s, 5m, 3h, 2d."""
    if since is None:
        return "-"
    seconds = max(int((now - since).total_seconds()), 0)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def clock(seconds: float) -> str:
    """H:MM:SS."""
    whole = int(seconds)
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


def job_table(jobs: Sequence[TrainingJob], now: datetime) -> list[str]:
    rows = [JOB_COLUMNS] + [
        (
            job.metadata.name,
            job.status.phase.value,
            progress_text(job),
            metrics_text(latest_metrics(job)),
            reason(job),
            age(job.metadata.creation_timestamp, now),
        )
        for job in jobs
    ]
    return table(rows)


def watch_line(job: TrainingJob) -> str:
    """One line per change while watching: phase, bar, ETA, loss, throughput and latest metrics."""
    parts = [job.metadata.name, job.status.phase.value, progress_text(job)]
    progress = job.status.progress
    if progress is not None and job.status.phase not in (Phase.SUCCEEDED, Phase.FAILED):
        if progress.eta_seconds is not None:
            parts.append(f"ETA {clock(progress.eta_seconds)}")
        if progress.train_loss is not None:
            parts.append(f"loss={progress.train_loss:.4g}")
        if progress.samples_per_second is not None:
            parts.append(f"{progress.samples_per_second:.4g} samples/s")
    metrics = latest_metrics(job)
    if metrics:
        parts.append(metrics_text(metrics))
    if job.status.phase in (Phase.SUCCEEDED, Phase.FAILED):
        condition = explaining(job)
        if condition is not None:
            parts.append(f"{condition.reason}: {condition.message}" if condition.message else condition.reason)
    return "  ".join(parts)


def cost_text(cost: Cost) -> str:
    """The most the job can use, and what it used so far once it ran."""
    if cost.estimated_gpu_hours is None:
        bound = "unbounded GPU-hours (GPUs without runPolicy.activeDeadlineSeconds)"
    elif cost.estimated_gpu_hours == 0:
        bound = "no GPUs"
    else:
        bound = f"at most {cost.estimated_gpu_hours:.4g} GPU-hours"
        if cost.estimated_cost is not None:
            bound += f" ({cost.estimated_cost:.2f} at {cost.price_per_gpu_hour:.4g} per GPU-hour)"
    if cost.used_gpu_hours:
        used = f"; used {cost.used_gpu_hours:.4g} GPU-hours"
        return bound + used + (f" ({cost.used_cost:.2f})" if cost.used_cost is not None else "")
    return bound


def residency_text(verdict: ResidencyVerdict | str, namespace: str) -> list[str]:
    if isinstance(verdict, str):
        return [verdict]
    if not verdict.policies and not verdict.violations:
        return [f"no DataResidencyPolicy selects namespace {namespace} (the operator's --default-residency applies)"]
    lines = []
    if verdict.blocking:
        lines.append(f"refused by {', '.join(verdict.policies) or 'the operator default'}:")
    else:
        regions = f", pods pinned to {', '.join(verdict.regions)}" if verdict.regions else ""
        lines.append(f"compliant with {', '.join(verdict.policies)}{regions}")
    lines += [f"  {v.enforcement.value}: {v.message()}" for v in verdict.violations]
    return lines


def submit_summary(preview: Preview) -> list[str]:
    """What `kubetrain submit` shows before creating: what runs where, its cost and the verdicts."""
    job, spec = preview.job, preview.job.spec
    resources = spec.resources
    runs = (f"{spec.workers} worker(s) x {spec.nproc_per_node} process(es), runtime {spec.runtime.value}, "
            f"node pool {spec.node_pool or '(any)'}, {resources.gpus} GPU(s) per worker")
    what = spec.task.type.value if spec.task is not None else "user code"
    lines = [
        f"TrainingJob {job.metadata.namespace}/{job.metadata.name}",
        f"  runs:      {runs}",
        f"  trains:    {what}",
        f"  data:      {spec.dataset.uri if spec.dataset is not None else '-'}",
        f"  output:    {spec.output.uri if spec.output is not None else '-'}",
        f"  cost:      {cost_text(preview.cost)}",
    ]
    residency = residency_text(preview.residency, job.metadata.namespace)
    lines.append(f"  residency: {residency[0]}")
    lines += [f"    {line}" for line in residency[1:]]
    budget = preview.budget
    queued = not isinstance(budget, str) and budget.queue
    lines.append(f"  budget:    {budget if isinstance(budget, str) else budget.message}"
                 f"{' (the job will be Queued until it fits)' if queued else ''}")
    return lines


def describe(job: TrainingJob, events: Sequence[dict[str, Any]], now: datetime) -> list[str]:
    """`kubetrain describe`: the job's state, its conditions and Events, provenance and cost."""
    status, meta = job.status, job.metadata
    lines = [
        f"Name:          {meta.name}",
        f"Namespace:     {meta.namespace}",
        f"Phase:         {status.phase.value} ({reason(job)})",
        f"Created:       {meta.creation_timestamp or '-'} ({age(meta.creation_timestamp, now)} ago)",
        f"Started:       {status.start_time or '-'}",
        f"Completed:     {status.completion_time or '-'}",
        f"Workers:       {status.workers or '-'} (attempt {status.current_attempt}, restarts {status.restarts})",
        f"Progress:      {watch_line(job).split('  ', 2)[2]}",
        f"Metrics:       {metrics_text(latest_metrics(job), limit=None)}",
        f"Cost:          {cost_text(status.cost) if status.cost is not None else '-'}",
        f"Model version: {status.model_version or '-'}",
    ]
    if job.spec.elastic is not None:
        group = status.elastic
        lines.append(f"Elastic:       {group.workers if group else 0} running (min {job.spec.elastic.min_workers}, "
                     f"max {job.spec.workers}), {group.membership_changes if group else 0} membership changes")
    if status.last_checkpoint is not None:
        lines.append(f"Checkpoint:    step {status.last_checkpoint.step} at {status.last_checkpoint.uri}")
    lines += ["", "Conditions:"] + _indent(table(
        [("TYPE", "STATUS", "REASON", "AGE", "MESSAGE")]
        + [(c.type, c.status.value, c.reason, age(c.last_transition_time, now), c.message) for c in status.conditions]
    ))
    lines += ["", "Provenance:"] + _indent(_provenance(job))
    lines += ["", "Events:"] + _indent(table(event_rows(events, now)) if events else ["<none>"])
    return lines


def event_rows(events: Sequence[dict[str, Any]], now: datetime) -> list[tuple[str, ...]]:
    """The Events table of `describe`, with its header, oldest first."""
    return [("TYPE", "REASON", "AGE", "MESSAGE")] + [
        (e.get("type") or "", e.get("reason") or "", _event_age(e, now), e.get("message") or "") for e in events
    ]


def _provenance(job: TrainingJob) -> list[str]:
    provenance = job.status.provenance
    if provenance is None:
        return ["<none yet>"]
    fields = {
        "submitted by": provenance.submitted_by,
        "dataset": provenance.dataset_uri,
        "dataset digest": provenance.dataset_digest,
        "image": provenance.trainer_image,
        "image digest": provenance.trainer_image_digest,
        "code version": provenance.code_version,
        "weights": provenance.weights_uri,
        "weights digest": provenance.weights_digest,
        "model card": provenance.model_card_uri,
    }
    return [f"{key + ':':<16}{value}" for key, value in fields.items() if value]


def _event_age(event: dict[str, Any], now: datetime) -> str:
    stamp = event.get("lastTimestamp") or event.get("eventTime")
    if not stamp:
        return "-"
    return age(datetime.fromisoformat(str(stamp).replace("Z", "+00:00")), now)


def _indent(lines: list[str]) -> list[str]:
    return [f"  {line}" for line in lines]
