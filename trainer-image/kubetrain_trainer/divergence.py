"""Divergence checks at a cadence, shared by the training loops (`loop`, `llm.loop`).

A check per step costs an all-reduce and a host sync, which on small steps is a large share of
the step and on a GPU stalls the device queue. So each step only keeps its loss tensor (no copy,
no sync); every `divergence.checkEverySteps` steps, and before every checkpoint and at the end of
every epoch, one all-reduce brings every kept step's group totals to the host and each step is
judged in order, as a per-step check would have judged it. The cadence depends only on the step
number, which every rank shares, so all ranks check at the same steps, raise at the same step,
and none is left waiting in a collective. The price: a divergence is found up to k-1 steps after
the step it names, and those steps' updates are wasted; no checkpoint is written in between,
since a check precedes every checkpoint.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from kubetrain_trainer import distributed
from kubetrain_trainer.config import TaskConfig
from kubetrain_trainer.errors import Diverged


@dataclass(frozen=True)
class StepTotals:
    """One optimizer step summed over all ranks."""

    step: int
    loss_sum: float  # the loss summed over `count`
    count: float  # what the loss is a mean over: samples, or labelled tokens
    read: float  # what throughput counts: samples, or tokens read


@dataclass(frozen=True)
class Check:
    """What one check found: every kept step's group totals, and whether any rank was asked to stop
    (SIGTERM, kubetrain_trainer.stopping), voted in the same collective."""

    steps: list[StepTotals]
    stop: bool


def check_divergence(task: TaskConfig, loss_sum: float, count: float, bad_ranks: float, step: int) -> None:
    """Judged on numbers every rank has from one all-reduce, so all ranks raise at the same step."""
    limit = task.divergence.max_loss
    if bad_ranks:
        raise Diverged(f"training loss became NaN/inf on {int(bad_ranks)} rank(s) at step {step}")
    if limit is not None and loss_sum / count > limit:
        raise Diverged(f"training loss {loss_sum / count:.4g} exceeded divergence.maxLoss {limit} at step {step}")


class LossWindow:
    """The steps since the last check: their loss tensors, still on the device, and the host-side
    numbers that go with them."""

    def __init__(self, task: TaskConfig, device: torch.device, last_step: int) -> None:
        self._task = task
        self._device = device
        self._last_step = last_step  # the step before the window's first
        self._losses: list[torch.Tensor] = []
        self._scales: list[float] = []
        self._counts: list[float] = []
        self._reads: list[float] = []

    def add(self, loss: torch.Tensor, scale: float, count: float, read: float) -> None:
        """One step on this rank: its summed loss is `loss * scale` (a batch mean times its rows,
        or a sum times 1; `scale` is the same on every rank), over `count`; `read` is what it read.
        Keeps a reference to `loss` and syncs nothing."""
        self._losses.append(loss.detach())
        self._scales.append(scale)
        self._counts.append(count)
        self._reads.append(read)

    @property
    def check_every_steps(self) -> int:
        return self._task.divergence.check_every_steps

    def check(self, stop_requested: bool = False) -> Check:
        """Every kept step's group totals, after raising Diverged for the first step that diverged,
        and the ranks' vote on stopping. A collective: every rank calls it at the same step."""
        kept = len(self._losses)
        losses = torch.stack(self._losses).float() if kept else torch.zeros(0, device=self._device)
        host = torch.tensor(self._counts + self._reads + [float(stop_requested)], dtype=torch.float32,
                            device=self._device)
        totals = distributed.all_reduce_sum(torch.cat([losses, host])).tolist()  # the window's one host sync
        sums, counts, reads = totals[:kept], totals[kept : 2 * kept], totals[2 * kept : 3 * kept]
        bad = [0.0] * kept
        if not all(math.isfinite(value) for value in sums):
            # Some rank's loss was NaN/inf, so every rank sees a non-finite sum and takes this branch:
            # a second collective, on the way to failing only, counts the ranks for the message.
            bad = distributed.all_reduce_sum((~torch.isfinite(losses)).float()).tolist()
        first = self._last_step + 1
        for offset in range(kept):
            sums[offset] *= self._scales[offset]
            check_divergence(self._task, sums[offset], counts[offset], bad[offset], first + offset)
        self._last_step += kept
        self._losses, self._scales, self._counts, self._reads = [], [], [], []
        return Check(steps=[StepTotals(first + i, sums[i], counts[i], reads[i]) for i in range(kept)],
                     stop=totals[3 * kept] > 0)
