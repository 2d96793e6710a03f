"""`curves.png`: the training and validation curves of a run's metric history (history.py), one
panel per metric, drawn at the end of training so the picture travels with the model.

matplotlib is imported only to draw (Agg, no display), and is optional: users' images running
the SDK may lack it, and then the run keeps its history without the picture (said in a log line).

`python -m kubetrain_trainer.curves HISTORY PNG [--metric NAME]` draws the same picture from a
metrics.jsonl anywhere: `kubetrain curve --png` runs it, so a job's curves are drawn by one piece
of code whether the trainer draws them at the end of the run or a user asks mid-run.
"""

from __future__ import annotations

import argparse
import io
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from kubetrain_trainer import logs

if TYPE_CHECKING:
    from kubetrain_trainer.history import MetricRecord

# metric -> phase -> (step, value) points in step order
Series = dict[str, dict[str, list[tuple[int, float]]]]

PANEL_INCHES = (6.0, 3.2)
DPI = 100
# Train points are many (a line); validation ones one per epoch (a line with markers); a test
# score is one point at the end. One colour per phase in every panel; phases drawn in this order.
STYLES = {"train": ("-", "tab:blue"), "validation": ("-o", "tab:orange"), "test": ("o", "tab:red")}


def series(records: Iterable[MetricRecord]) -> Series:
    """The points of each metric per phase, in step order; where several records give a metric
    at one step of one phase (an attempt that resumed from a checkpoint), the last one wins.
    Metrics measured only on the test split (once, at the end) make no curve and are left out."""
    points: dict[str, dict[str, dict[int, float]]] = {}
    for record in records:
        for name, value in record.metrics.items():
            points.setdefault(name, {}).setdefault(record.phase, {})[record.step] = value
    return {
        name: {phase: sorted(phases[phase].items()) for phase in STYLES if phase in phases}
        for name, phases in sorted(points.items()) if set(phases) - {"test"}
    }


def render_png(curves: Series) -> bytes | None:
    """The PNG, one panel per metric (train and validation as lines, test as a marker at its
    step); None when matplotlib is not installed or there is nothing to draw."""
    if not curves:
        return None
    try:
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib import pyplot
    except ImportError:
        logs.warning("curves_skipped", reason="matplotlib is not installed in this image")
        return None
    figure, axes = pyplot.subplots(
        len(curves), 1, figsize=(PANEL_INCHES[0], PANEL_INCHES[1] * len(curves)), squeeze=False
    )
    for axis, (name, phases) in zip(axes[:, 0], curves.items(), strict=True):
        for phase, points in phases.items():
            steps, values = zip(*points, strict=True)
            style, colour = STYLES[phase]
            axis.plot(steps, values, style, color=colour, label=phase, markersize=4)
        axis.set_title(name)
        axis.set_xlabel("step")
        axis.grid(alpha=0.3)
        axis.legend()
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    pyplot.close(figure)
    return buffer.getvalue()


def main(argv: Sequence[str] | None = None) -> int:
    """Exit 0 with the PNG written; 1 when the history has nothing to draw (or not the metric);
    2 without matplotlib."""
    from kubetrain_trainer.history import parse

    parser = argparse.ArgumentParser(prog="python -m kubetrain_trainer.curves",
                                     description="draw a metrics.jsonl's curves as a PNG")
    parser.add_argument("history", type=Path)
    parser.add_argument("png", type=Path)
    parser.add_argument("--metric", default=None)
    args = parser.parse_args(argv)
    drawn = series(parse(args.history.read_text()))
    if args.metric is not None:
        drawn = {args.metric: drawn[args.metric]} if args.metric in drawn else {}
    if not drawn:
        print(f"{args.history}: no curve to draw", file=sys.stderr)
        return 1
    png = render_png(drawn)
    if png is None:
        print("drawing a PNG needs matplotlib (pip install matplotlib)", file=sys.stderr)
        return 2
    try:
        args.png.write_bytes(png)
    except OSError as exc:
        print(f"cannot write {args.png}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
