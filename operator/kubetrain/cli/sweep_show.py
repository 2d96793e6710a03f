"""How `kubetrain sweep` prints a TrainingSweep: its state and cost, the trial table, and the
objective against the trial as a bar per trial. Pure, like cli/show.py, whose table and age it
uses."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from kubetrain.api.sweep import TrainingSweep, Trial
from kubetrain.cli.show import BAR_WIDTH, age, event_rows, table


def _hours(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def _parameters(parameters: dict[str, Any]) -> str:
    """Floats to 4 significant digits (a sampled learning rate has 17); the rest as JSON."""
    return " ".join(
        f"{path}={f'{value:.4g}' if isinstance(value, float) else json.dumps(value)}"
        for path, value in parameters.items()
    )


def _value(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def describe_sweep(sweep: TrainingSweep, events: Sequence[dict[str, Any]], now: datetime) -> list[str]:
    spec, status, meta = sweep.spec, sweep.status, sweep.metadata
    counts, cost = status.counts, status.cost
    best = status.best
    best_line = f"{best.job} {spec.objective.metric} {best.value:.4f} {_parameters(best.parameters)}" if best else "-"
    cap = f" of maxGpuHours {spec.max_gpu_hours:g}" if spec.max_gpu_hours is not None else ""
    lines = [
        f"Name:       {meta.name}",
        f"Namespace:  {meta.namespace}",
        f"Created:    {meta.creation_timestamp or '-'} ({age(meta.creation_timestamp, now)} ago)",
        f"Phase:      {status.phase.value if status.phase else 'Pending'} ({status.reason or '-'}: "
        f"{status.message or '-'})",
        f"Search:     {spec.algorithm.value}, seed {spec.seed}; {spec.objective.goal.value} "
        f"{spec.objective.metric}; pruning {spec.pruning.policy.value}",
        f"Trials:     {status.completed or '-'} ended, {spec.parallel_trials} at once; pending {counts.pending}, "
        f"running {counts.running}, succeeded {counts.succeeded}, failed {counts.failed}, pruned {counts.pruned}",
        f"Best:       {best_line}",
        f"Cost:       {_hours(cost.trial_gpu_hours)} GPU-hours per trial, {_hours(cost.estimated_gpu_hours)} "
        f"estimated; {_hours(cost.spent_gpu_hours)} spent, {_hours(cost.remaining_gpu_hours)} left{cap}",
        f"Budget:     {cost.budget or '-'}",
        "",
        "Trials:",
        *[f"  {line}" for line in trial_table(status.trials, spec.objective.metric)],
        "",
        f"{spec.objective.metric} by trial:",
        *[f"  {line}" for line in objective_chart(status.trials)],
        "",
        "Events:",
        *[f"  {line}" for line in (table(event_rows(events, now)) if events else ["<none>"])],
    ]
    return lines


def trial_table(trials: Sequence[Trial], metric: str) -> list[str]:
    if not trials:
        return ["<none yet>"]
    rows = [("TRIAL", "JOB", "STATE", metric.upper(), "EPOCHS", "GPU-HOURS", "PARAMETERS")]
    for t in trials:
        epochs = max((int(e) for e in t.intermediate), default=0)
        rows.append((str(t.index), t.job, t.state.value, _value(t.value), str(epochs or "-"), _hours(t.gpu_hours),
                     _parameters(t.parameters)))
    return table(rows)


def objective_chart(trials: Sequence[Trial]) -> list[str]:
    """A bar per trial, scaled from the lowest to the highest value: a final value for an ended
    trial, the latest live one (marked ~) for a running or pruned one."""
    points: list[tuple[Trial, float, bool]] = []
    for t in trials:
        if t.value is not None:
            points.append((t, t.value, True))
        elif t.intermediate:
            points.append((t, t.intermediate[max(t.intermediate, key=int)], False))
    if not points:
        return ["<no values yet>"]
    low, high = min(v for _, v, _ in points), max(v for _, v, _ in points)
    span = high - low or 1.0
    return [
        f"t{t.index:<3} {value:8.4f}{' ' if final else '~'} |{'#' * max(1, round(BAR_WIDTH * (value - low) / span))}"
        for t, value, final in points
    ]
