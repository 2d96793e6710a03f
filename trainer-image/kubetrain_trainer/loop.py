"""The training loop: DDP over in-memory tensors, periodic checkpoints with resume, and
divergence detection that all ranks agree on."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from kubetrain_trainer import distributed, logs
from kubetrain_trainer.checkpoint import Checkpointer
from kubetrain_trainer.config import TaskConfig
from kubetrain_trainer.divergence import LossWindow, StepTotals
from kubetrain_trainer.environment import Topology
from kubetrain_trainer.evaluate import evaluate
from kubetrain_trainer.history import History, step_interval
from kubetrain_trainer.preprocess import Prepared
from kubetrain_trainer.progress import Gate, ProgressTracker
from kubetrain_trainer.stopping import Stopped, StopRequest


@dataclass(frozen=True)
class LoopResult:
    steps: int
    total_steps: int
    resumed_from_step: int
    train_loss: float | None  # last epoch's mean; None when a restart found the run already complete
    samples_per_second: float
    final_progress: dict[str, Any]


def _autocast(device: torch.device) -> contextlib.AbstractContextManager[Any]:
    """bf16 autocast on GPUs only: CPU autocast is slower than fp32 for these small models. One
    object serves every step (entered once per step, never nested)."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def resume(
    checkpointer: Checkpointer,
    topology: Topology,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    steps_per_epoch: int,
) -> int:
    """The step to start from, in epochs of `steps_per_epoch` steps (Resumed.step_in). Rank 0
    picks the checkpoint and sends its bytes to every rank, so all ranks resume from the same step
    even if their view of the output location differs."""
    latest = checkpointer.read_latest() if topology.is_chief else None
    latest = distributed.broadcast_from_chief(latest)
    if latest is None:
        return 0
    resumed = checkpointer.restore(*latest, model, optimizer)
    step = resumed.step_in(steps_per_epoch)
    logs.info("resumed", step=step, saved_step=resumed.step, epoch=resumed.epoch, checkpoint=resumed.name,
              world_size=topology.world_size)
    return step


def make_optimizer(model: nn.Module, task: TaskConfig, device: torch.device) -> torch.optim.Optimizer:
    trainable = [p for p in model.parameters() if p.requires_grad]
    return torch.optim.AdamW(trainable, lr=task.learning_rate, fused=device.type == "cuda")


class TrainPoints:
    """The train loss into the history every `interval` steps, as the mean over those steps (one
    point per step would be noise, and a file that grows with the run's length)."""

    def __init__(self, history: History | None, interval: int) -> None:
        self.history = history
        self.interval = interval
        self._loss_sum, self._count = 0.0, 0.0

    def add(self, step: int, epoch: int, loss_sum: float, count: float) -> None:
        """After optimizer step `step`: the summed loss over `count` examples (or tokens)."""
        if self.history is None:
            return
        self._loss_sum, self._count = self._loss_sum + loss_sum, self._count + count
        if step % self.interval == 0:
            self.history.record(step, "train", {"loss": self._loss_sum / max(self._count, 1.0)}, epoch=epoch)
            self._loss_sum, self._count = 0.0, 0.0


class StepChecks:
    """What both loops (this one and llm.loop) do after an optimizer step, in the same order on
    every rank: at a check (every `divergence.checkEverySteps` steps, before every checkpoint, at
    an epoch's end) one collective brings the kept steps' losses, the divergence verdict and the
    ranks' vote on a SIGTERM any of them got; then the chief checkpoints when one is due or the
    group stops, so no checkpoint holds a diverged step's weights and a stop loses no step."""

    def __init__(
        self,
        window: LossWindow,
        train_points: TrainPoints,
        stop: StopRequest,
        total_steps: int,
        checkpoint_every_steps: int,
        save: Callable[[int, int], None] | None,
    ) -> None:
        """`save(step, epoch)`: the chief's checkpoint writer; None on the other ranks."""
        self.window = window
        self.train_points = train_points
        self.stop = stop
        self.total_steps = total_steps
        self.checkpoint_every_steps = checkpoint_every_steps
        self.save = save
        self._next_due = 0  # the next step at which a check or checkpoint may be due; 0: not known yet

    def after(self, step: int, epoch: int, end_of_epoch: bool) -> list[StepTotals]:
        """The group totals of the steps checked now (none between checks). Raises Diverged, or
        Stopped once the stop's checkpoint is written. Between checks it costs one comparison: on
        small steps, the loop's own bookkeeping is what separates it from a plain PyTorch loop."""
        if step < self._next_due and not end_of_epoch:
            return []
        every = self.window.check_every_steps
        self._next_due = min(_next_multiple(step, self.checkpoint_every_steps), _next_multiple(step, every),
                             self.total_steps)
        checkpoint_due = step % self.checkpoint_every_steps == 0 or step == self.total_steps
        totals: list[StepTotals] = []
        stopping = False
        if checkpoint_due or step % every == 0 or end_of_epoch:
            checked = self.window.check(self.stop.requested)
            totals, stopping = checked.steps, checked.stop
            for totals_of_step in totals:
                self.train_points.add(totals_of_step.step, epoch + 1, totals_of_step.loss_sum, totals_of_step.count)
        if self.save is not None and (checkpoint_due or stopping):
            self.save(step, epoch)
        if stopping:
            # Every rank leaves at the same step, after the chief's checkpoint of it is written
            # (the barrier), so the next attempt resumes exactly there.
            distributed.barrier()
            logs.info("stopped_on_sigterm", step=step)
            raise Stopped(f"stopped on SIGTERM at step {step} of {self.total_steps}, after writing its checkpoint")
        return totals


def _next_multiple(step: int, every: int) -> int:
    return (step // every + 1) * every


def chief_saver(
    topology: Topology, checkpointer: Checkpointer, steps_per_epoch: int, model: nn.Module,
    optimizer: torch.optim.Optimizer,
) -> Callable[[int, int], None] | None:
    """StepChecks' `save` for this rank: only the chief writes checkpoints."""
    if not topology.is_chief:
        return None

    def save(step: int, epoch: int) -> None:
        saved = checkpointer.save(step, epoch, steps_per_epoch, model, optimizer)
        logs.info("checkpoint_saved", step=step, checkpoint=saved.uri, digest=saved.digest)

    return save


class TrainingLoop:
    def __init__(
        self,
        model: nn.Module,
        data: Prepared,
        task: TaskConfig,
        topology: Topology,
        device: torch.device,
        checkpointer: Checkpointer,
        progress_gate: Gate | None = None,
        epoch_report: Callable[[dict[str, Any]], None] | None = None,
        history: History | None = None,
        stop: StopRequest | None = None,
    ) -> None:
        """`progress_gate` and `history`: rank 0's (status reports, metrics.jsonl); None elsewhere.
        `stop`: SIGTERM's request (kubetrain_trainer.stopping), looked at on every loss check."""
        self.model = model
        self.data = data
        self.task = task
        self.topology = topology
        self.device = device
        self.checkpointer = checkpointer
        self.progress_gate = progress_gate
        self.epoch_report = epoch_report
        self.history = history
        self.stop = stop or StopRequest()
        self.optimizer = make_optimizer(model, task, device)
        self.order = distributed.EpochOrder(len(data.train[1]), topology, task.seed)
        self.steps_per_epoch = math.ceil(len(self.order) / task.batch_size)
        self.total_steps = self.steps_per_epoch * task.epochs
        self.train_points = TrainPoints(history, step_interval(self.total_steps))

    def run(self) -> LoopResult:
        start_step = resume(self.checkpointer, self.topology, self.model, self.optimizer, self.steps_per_epoch)
        ddp: nn.Module = self.model
        if self.topology.distributed:
            ddp = DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None
            )
        # The data sets are in memory already; on a GPU, keeping them there too saves a host copy per step.
        x_train, y_train = (t.to(self.device) for t in self.data.train)
        batch = self.task.batch_size
        logs.info(
            "training_started", step=start_step, total_steps=self.total_steps, steps_per_epoch=self.steps_per_epoch
        )
        tracker = ProgressTracker(
            self.progress_gate or (lambda _: False), self.total_steps, self.task.epochs, start_step
        )
        window = LossWindow(self.task, self.device, start_step)
        checks = StepChecks(
            window, self.train_points, self.stop, self.total_steps, self.task.checkpoint_every_steps,
            chief_saver(self.topology, self.checkpointer, self.steps_per_epoch, self.model, self.optimizer),
        )
        step, epoch_loss, epoch_count, train_loss = start_step, 0.0, 0, None
        autocast, optimizer, last = _autocast(self.device), self.optimizer, self.steps_per_epoch - 1
        self.model.train()
        for epoch in range(start_step // self.steps_per_epoch, self.task.epochs):
            batches = self.order.indices(epoch).to(self.device).split(batch)
            for position in range(step - epoch * self.steps_per_epoch, self.steps_per_epoch):
                rows = batches[position]
                with autocast:
                    logits = ddp(x_train[rows])
                loss = F.cross_entropy(logits.float(), y_train[rows])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                step += 1
                size = len(rows)
                window.add(loss, size, size, size)
                totals = checks.after(step, epoch, end_of_epoch=position == last)
                if totals:
                    loss_sum, count = sum(t.loss_sum for t in totals), int(sum(t.count for t in totals))
                    tracker.record(step, epoch, loss_sum, count)
                    epoch_loss, epoch_count = epoch_loss + loss_sum, epoch_count + count
            train_loss = epoch_loss / max(epoch_count, 1)
            self._end_of_epoch(epoch, train_loss, tracker)
            epoch_loss, epoch_count = 0.0, 0
        return LoopResult(
            steps=step,
            total_steps=self.total_steps,
            resumed_from_step=start_step,
            train_loss=None if train_loss is None else round(train_loss, 6),
            samples_per_second=tracker.samples_per_second,
            final_progress=tracker.latest,
        )

    def _end_of_epoch(self, epoch: int, train_loss: float, tracker: ProgressTracker) -> None:
        """On rank 0, the validation scores become the live metrics of a progress document sent
        at once (epoch_report), so a sweep can compare trials at the same epoch and prune."""
        fields: dict[str, Any] = {"epoch": epoch + 1, "train_loss": round(train_loss, 6)}
        if self.topology.is_chief and len(self.data.validation[1]):
            scores = evaluate(self.model, *self.data.validation, self.data.num_classes, self.device)
            fields.update(validation_loss=round(scores["loss"], 6), validation_accuracy=round(scores["accuracy"], 4))
            document = tracker.end_epoch(
                epoch, {"loss": fields["validation_loss"], "accuracy": fields["validation_accuracy"]}
            )
            if self.epoch_report is not None:
                self.epoch_report(document)
            if self.history is not None:
                self.history.record(
                    (epoch + 1) * self.steps_per_epoch, "validation",
                    {"loss": scores["loss"], "accuracy": scores["accuracy"]}, epoch=epoch + 1,
                )
        logs.info("epoch_finished", **fields)
