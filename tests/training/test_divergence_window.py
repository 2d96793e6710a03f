"""The divergence window in one process: per-step totals and the step a verdict names, whatever
the check cadence (two ranks agreeing on it is tests/training/test_distributed_training.py)."""

from __future__ import annotations

import math

import pytest
import torch

from kubetrain_trainer.config import TaskConfig
from kubetrain_trainer.divergence import LossWindow, StepTotals
from kubetrain_trainer.errors import Diverged
from kubetrain_trainer.loop import StepChecks, TrainPoints
from kubetrain_trainer.stopping import StopRequest

pytestmark = pytest.mark.training
CPU = torch.device("cpu")


def task(every: int, max_loss: float | None = None) -> TaskConfig:
    return TaskConfig.model_validate(
        {"type": "tabular-classification", "divergence": {"checkEverySteps": every, "maxLoss": max_loss}}
    )


def test_a_check_returns_each_kept_step_summed_and_starts_a_new_window() -> None:
    window = LossWindow(task(every=3), CPU, last_step=10)
    window.add(torch.tensor(0.5), 4, 4, 4)  # a batch mean over 4 samples
    window.add(torch.tensor(6.0), 1, 3, 9)  # a token sum over 3 labelled tokens, 9 read
    assert window.check().steps == [StepTotals(11, 2.0, 4.0, 4.0), StepTotals(12, 6.0, 3.0, 9.0)]
    assert window.check().steps == []
    window.add(torch.tensor(1.0), 2, 2, 2)
    assert window.check().steps == [StepTotals(13, 2.0, 2.0, 2.0)]


@pytest.mark.parametrize("every", [1, 4, 10])
@pytest.mark.parametrize("start", [0, 7])
def test_checks_and_checkpoints_follow_the_step_number_from_any_start(every: int, start: int) -> None:
    """A resumed run checks at the same steps as one that ran from the start: every `every` steps,
    before each checkpoint (every 6 steps and the last), and at each epoch's end (every 9 steps)."""
    window = LossWindow(task(every), CPU, last_step=start)
    saved: list[int] = []
    checks = StepChecks(window, TrainPoints(None, 1), StopRequest(), total_steps=20, checkpoint_every_steps=6,
                        save=lambda step, _epoch: saved.append(step))
    checked = []
    for step in range(start + 1, 21):
        window.add(torch.tensor(1.0), 1, 1, 1)
        if checks.after(step, (step - 1) // 9, end_of_epoch=step % 9 == 0):
            checked.append(step)
    expected = [s for s in range(start + 1, 21) if s % every == 0 or s % 6 == 0 or s % 9 == 0 or s == 20]
    assert checked == expected
    assert saved == [s for s in (6, 12, 18, 20) if s > start]


@pytest.mark.parametrize(
    ("loss", "max_loss", "message"),
    [
        (math.nan, None, "training loss became NaN/inf on 1 rank(s) at step 6"),
        (math.inf, None, "training loss became NaN/inf on 1 rank(s) at step 6"),
        (3.0, 2.5, "training loss 3 exceeded divergence.maxLoss 2.5 at step 6"),
    ],
)
def test_a_late_check_names_the_step_that_diverged(loss: float, max_loss: float | None, message: str) -> None:
    window = LossWindow(task(every=4, max_loss=max_loss), CPU, last_step=4)
    for value in (1.0, loss, 1.0):  # steps 5, 6, 7; step 8 would be the check
        window.add(torch.tensor(value), 8, 8, 8)
    with pytest.raises(Diverged) as raised:
        window.check()
    assert str(raised.value) == message


def test_a_loss_at_max_loss_is_not_divergence() -> None:
    window = LossWindow(task(every=2, max_loss=2.0), CPU, last_step=0)
    window.add(torch.tensor(2.0), 8, 8, 8)
    assert [t.step for t in window.check().steps] == [1]


def test_the_stop_vote_rides_on_the_check() -> None:
    window = LossWindow(task(every=2), CPU, last_step=0)
    window.add(torch.tensor(1.0), 1, 1, 1)
    assert window.check().stop is False
    window.add(torch.tensor(1.0), 1, 1, 1)
    checked = window.check(stop_requested=True)
    assert checked.stop is True and [t.step for t in checked.steps] == [2]
