"""How `kubetrain curve` draws a job's metric history (api/history.py): a plain-text chart per
metric, a pure function of the records, so it reads the same in a terminal, a CI log or a pipe
and is unit-tested to the character. `--png` runs the trainer's own drawing
(`python -m kubetrain_trainer.curves`), the code that drew the run's curves.png.

A hand-drawn chart rather than a terminal plotting library: a few dozen lines of ASCII that need
no dependency, no colour support and no terminal size, and whose output tests can assert."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path

from kubetrain.api.history import MetricRecord
from kubetrain.cli.trainer import TRAINER_MODULE

# metric -> phase -> (step, value) points in step order
Series = dict[str, dict[str, list[tuple[int, float]]]]

WIDTH, HEIGHT = 60, 12
LABEL_WIDTH = 10
# Drawn in this order, so a validation point covers a train point in the same cell.
MARKS = {"train": "*", "validation": "o", "test": "X"}


def series(records: Iterable[MetricRecord]) -> Series:
    """The points of each metric per phase, in step order; where several records give a metric
    at one step of one phase (an attempt that resumed from a checkpoint), the last one wins.
    Metrics measured only on the test split (once, at the end) make no curve and are left out."""
    points: dict[str, dict[str, dict[int, float]]] = {}
    for record in records:
        for name, value in record.metrics.items():
            points.setdefault(name, {}).setdefault(record.phase, {})[record.step] = value
    return {
        name: {phase: sorted(phases[phase].items()) for phase in MARKS if phase in phases}
        for name, phases in sorted(points.items()) if set(phases) - {"test"}
    }


def _scale(value: float, low: float, high: float, cells: int) -> int:
    return 0 if high == low else round((value - low) * (cells - 1) / (high - low))


def chart(name: str, phases: dict[str, list[tuple[int, float]]], width: int = WIDTH, height: int = HEIGHT) -> list[str]:
    """One metric's chart: a legend with each phase's last value, the points on a grid with the
    value range on the left and the step range below."""
    points = [point for line in phases.values() for point in line]
    steps, values = [s for s, _ in points], [v for _, v in points]
    first, last, low, high = min(steps), max(steps), min(values), max(values)
    grid = [[" "] * width for _ in range(height)]
    for phase, line in phases.items():
        for step, value in line:
            grid[height - 1 - _scale(value, low, high, height)][_scale(step, first, last, width)] = MARKS[phase]
    legend = ", ".join(
        f"{MARKS[phase]} {phase} {line[-1][1]:.4g} at step {line[-1][0]}" for phase, line in phases.items()
    )
    lines = [f"{name}: {legend}"]
    for row, cells in enumerate(grid):
        label = f"{high:.4g}" if row == 0 else f"{low:.4g}" if row == height - 1 else ""
        lines.append(f"{label:>{LABEL_WIDTH}} |{''.join(cells).rstrip()}")
    lines.append(f"{'':>{LABEL_WIDTH}} +{'-' * width}")
    below = f"step {first}"
    lines.append(f"{'':>{LABEL_WIDTH}}  {below}{str(last).rjust(width - len(below))}")
    return lines


def charts(curves: Series) -> list[str]:
    """Every metric's chart, a blank line between them."""
    lines: list[str] = []
    for name, phases in curves.items():
        lines.extend([*([""] if lines else []), *chart(name, phases)])
    return lines


def png_argv(history: Path, png: Path, metric: str | None) -> list[str]:
    argv = [sys.executable, "-m", f"{TRAINER_MODULE}.curves", str(history), str(png)]
    return argv + (["--metric", metric] if metric is not None else [])
