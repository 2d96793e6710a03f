"""Hugging Face transformers' `Trainer` reporting through the SDK: add the callback and its logs
become status.progress (step, epoch, loss, live metrics), its evaluations live metrics, and its
saved checkpoints status.lastCheckpoint.

    trainer = Trainer(..., callbacks=[KubetrainCallback()])
    trainer.train()
    sdk.finish(trainer.evaluate())        # final metrics, named as the Trainer names them (eval_loss, ...)

transformers is imported when the callback is made, never with the SDK. The reporting logic is
`TrainerReporting`, a plain class the callback inherits beside transformers' TrainerCallback.
"""

from __future__ import annotations

import math
import os
from typing import Any

from kubetrain_trainer import sdk
from kubetrain_trainer.sdk.run import Run

# Keys of a Trainer log that describe the step rather than measure the model.
_PROGRESS_KEYS = {"loss", "epoch", "step", "total_flos", "train_runtime"}


class TrainerReporting:
    """The callback's events, on transformers' (args, state, control) objects: `args.output_dir`,
    `args.num_train_epochs`, `state.global_step`, `state.max_steps`, `state.epoch`."""

    def __init__(self, run: Run | None = None) -> None:
        self.run = run if run is not None else sdk.current()
        self._loss: float | None = None

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **_: Any) -> None:
        """Every Trainer log; those without a training loss (evaluations, the end-of-training
        summary) keep the last one, so status.progress.trainLoss never blinks out between logs."""
        logs = logs or {}
        epoch = state.epoch
        loss = logs.get("loss")
        if isinstance(loss, (int, float)):
            self._loss = float(loss)
        self.run.progress(
            state.global_step,
            total_steps=state.max_steps or None,
            epoch=max(math.ceil(epoch), 1) if epoch is not None else None,
            total_epochs=math.ceil(args.num_train_epochs) if args.num_train_epochs else None,
            loss=self._loss,
            metrics={key: value for key, value in logs.items() if key not in _PROGRESS_KEYS},
        )

    def on_evaluate(self, args: Any, state: Any, control: Any, metrics: dict[str, Any] | None = None, **_: Any) -> None:
        self.run.log_metrics(metrics or {})

    def on_save(self, args: Any, state: Any, control: Any, **_: Any) -> None:
        """The Trainer has just written `<output_dir>/checkpoint-<global_step>` (its own naming)."""
        path = os.path.join(args.output_dir, f"checkpoint-{state.global_step}")
        if os.path.isdir(path):
            self.run.checkpoint(path, state.global_step)


def KubetrainCallback(run: Run | None = None) -> Any:  # noqa: N802 (a class to its callers)
    """A `transformers.TrainerCallback` reporting `run` (default: the process's run)."""
    from transformers import TrainerCallback

    callback = type("KubetrainCallback", (TrainerReporting, TrainerCallback), {})
    return callback(run)
