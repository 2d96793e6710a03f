"""status.progress documents from per-step numbers. The loss in a document is the mean since the
previous accepted document, so a noisy single batch never stands for a whole interval."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from kubetrain_trainer import logs
from kubetrain_trainer.status import rfc3339

# Decides whether a document goes out now (the status reporter's rate limit, or a log throttle).
Gate = Callable[[dict[str, Any]], bool]


class ProgressTracker:
    def __init__(self, gate: Gate, total_steps: int, total_epochs: int, start_step: int) -> None:
        self._gate = gate
        self._total_steps = total_steps
        self._total_epochs = total_epochs
        self._start_step = start_step
        self._began = time.monotonic()
        self._samples = 0
        self._window_loss = 0.0
        self._window_samples = 0
        self.latest: dict[str, Any] = {}

    def record(self, step: int, epoch: int, loss_sum: float, samples: int) -> None:
        """The optimizer steps of the whole group since the last call, up to `step`: `loss_sum` over
        their `samples` (all ranks). The loops call it at each divergence check, not each step, so
        that building a document stays off the per-step path."""
        self._samples += samples
        self._window_loss += loss_sum
        self._window_samples += samples
        elapsed = max(time.monotonic() - self._began, 1e-9)
        self.latest = {
            "epoch": epoch + 1,
            "totalEpochs": self._total_epochs,
            "step": step,
            "totalSteps": self._total_steps,
            "trainLoss": round(self._window_loss / self._window_samples, 6),
            "samplesPerSecond": round(self._samples / elapsed, 2),
            "etaSeconds": round((self._total_steps - step) * elapsed / (step - self._start_step)),
            "percent": round(100.0 * step / self._total_steps, 2),
            "updateTime": rfc3339(),
        }
        if self._gate(self.latest):
            logs.info("progress", **self.latest)
            self._window_loss, self._window_samples = 0.0, 0

    def end_epoch(self, epoch: int, metrics: dict[str, float]) -> dict[str, Any]:
        """The latest document, at the end of 0-based `epoch`, carrying the live metrics measured
        then; the documents of the next steps carry none, so an epoch's metrics are never paired
        with a later epoch's number."""
        self.latest = {**self.latest, "epoch": epoch + 1, "metrics": metrics, "updateTime": rfc3339()}
        return self.latest

    @property
    def samples_per_second(self) -> float:
        return self._samples / max(time.monotonic() - self._began, 1e-9)
