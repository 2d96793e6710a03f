"""The causal-lm training loop: the classification loop's contract (DDP, checkpoints every
`checkpointEverySteps` with resume, divergence every rank agrees on, a checkpoint on SIGTERM,
progress) over token
sequences, plus what fine-tuning a language model needs: gradient accumulation, a learning-rate
schedule with warmup, and gradient clipping."""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from kubetrain_trainer import distributed, logs
from kubetrain_trainer.checkpoint import Checkpointer
from kubetrain_trainer.config import CausalLMConfig, TaskConfig
from kubetrain_trainer.divergence import LossWindow
from kubetrain_trainer.environment import Topology
from kubetrain_trainer.history import History, step_interval
from kubetrain_trainer.llm import metrics
from kubetrain_trainer.llm.corpus import IGNORE, Batches
from kubetrain_trainer.loop import LoopResult, StepChecks, TrainPoints, chief_saver, make_optimizer, resume
from kubetrain_trainer.progress import Gate, ProgressTracker
from kubetrain_trainer.stopping import StopRequest


@dataclass(frozen=True)
class LanguageLoopResult(LoopResult):
    tokens_per_second: float  # every token the model read (attention mask), all ranks together


def lr_factor(step: int, total_steps: int, config: CausalLMConfig) -> float:
    """The learning rate's multiplier at optimizer step `step` (0-based): linear warmup over
    `warmupSteps`, then cosine or linear decay towards 0 at the last step, or constant."""
    if step < config.warmup_steps:
        return (step + 1) / config.warmup_steps
    if config.schedule == "constant":
        return 1.0
    progress = (step - config.warmup_steps) / max(total_steps - config.warmup_steps, 1)
    if config.schedule == "linear":
        return max(0.0, 1.0 - progress)
    return 0.5 * (1.0 + math.cos(math.pi * progress))


class LanguageModelLoop:
    def __init__(
        self,
        model: nn.Module,
        train: Batches,
        validation: Batches,
        task: TaskConfig,
        topology: Topology,
        device: torch.device,
        checkpointer: Checkpointer,
        progress_gate: Gate | None = None,
        history: History | None = None,
        stop: StopRequest | None = None,
    ) -> None:
        """`progress_gate` and `history`: rank 0's (status reports, metrics.jsonl); None elsewhere.
        `stop`: SIGTERM's request (kubetrain_trainer.stopping), voted on at every loss check."""
        self.model = model
        self.train = train
        self.validation = validation
        self.task = task
        self.config = task.causal_lm
        self.topology = topology
        self.device = device
        self.checkpointer = checkpointer
        self.progress_gate = progress_gate
        self.history = history
        self.stop = stop or StopRequest()
        self.optimizer = make_optimizer(model, task, device)
        self.trainable = [p for p in model.parameters() if p.requires_grad]
        self.order = distributed.EpochOrder(len(train), topology, task.seed)
        self.window = task.batch_size * self.config.gradient_accumulation_steps  # sequences per optimizer step
        self.steps_per_epoch = math.ceil(len(self.order) / self.window)
        self.total_steps = self.steps_per_epoch * task.epochs
        self.train_points = TrainPoints(history, step_interval(self.total_steps))

    def _step(self, ddp: nn.Module, window: torch.Tensor, step: int) -> tuple[torch.Tensor, int, int]:
        """One optimizer step over `window` (this rank's sequences), in micro-batches of
        `batchSize`; gradients are synchronised on the last micro-batch only. Returns this rank's
        summed token loss (on the device: nothing waits for it here), its labelled tokens and the
        tokens it read, both counted on the host from the batch."""
        for group in self.optimizer.param_groups:
            group["lr"] = self.task.learning_rate * lr_factor(step, self.total_steps, self.config)
        rows = self.train.rows(window)
        labelled = int((rows["labels"][:, 1:] != IGNORE).sum().clamp(min=1))
        loss_sum = torch.zeros((), device=self.device)
        micro = list(range(0, len(window), self.task.batch_size))
        for start in micro:
            last = start == micro[-1]
            no_sync = isinstance(ddp, DistributedDataParallel) and not last
            with ddp.no_sync() if no_sync else contextlib.nullcontext():  # type: ignore[operator]
                part = {k: v[start : start + self.task.batch_size].to(self.device) for k, v in rows.items()}
                loss, _ = metrics.token_loss(ddp, part)
                (loss / labelled).backward()
            loss_sum += loss.detach()
        if self.config.max_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(self.trainable, self.config.max_grad_norm)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return loss_sum, labelled, int(rows["attention_mask"].sum())

    def _sequences(self, step: int) -> int:
        """Sequences of optimizer step `step` (1-based) on all ranks: a full window but for an
        epoch's last step; every rank has as many (EpochOrder pads)."""
        position = (step - 1) % self.steps_per_epoch
        return min(self.window, len(self.order) - position * self.window) * self.topology.world_size

    def run(self) -> LanguageLoopResult:
        start_step = resume(self.checkpointer, self.topology, self.model, self.optimizer, self.steps_per_epoch)
        ddp: nn.Module = self.model
        if self.topology.distributed:
            ddp = DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None
            )
        logs.info(
            "training_started", step=start_step, total_steps=self.total_steps, steps_per_epoch=self.steps_per_epoch
        )
        tracker = ProgressTracker(
            self.progress_gate or (lambda _: False), self.total_steps, self.task.epochs, start_step
        )
        losses = LossWindow(self.task, self.device, start_step)
        checks = StepChecks(
            losses, self.train_points, self.stop, self.total_steps, self.task.checkpoint_every_steps,
            chief_saver(self.topology, self.checkpointer, self.steps_per_epoch, self.model, self.optimizer),
        )
        began, read_total = time.monotonic(), 0.0
        step, epoch_loss, epoch_tokens, train_loss = start_step, 0.0, 0.0, None
        self.model.train()
        for epoch in range(start_step // self.steps_per_epoch, self.task.epochs):
            order = self.order.indices(epoch)
            for position in range(step - epoch * self.steps_per_epoch, self.steps_per_epoch):
                window = order[position * self.window : (position + 1) * self.window]
                loss_sum, labelled, read = self._step(ddp, window, step)
                step += 1
                losses.add(loss_sum, 1.0, labelled, read)
                totals = checks.after(step, epoch, end_of_epoch=position == self.steps_per_epoch - 1)
                if totals:
                    # Progress counts sequences, each weighted by its step's mean token loss.
                    sequences = [self._sequences(t.step) for t in totals]
                    weighted = sum(t.loss_sum / t.count * n for t, n in zip(totals, sequences, strict=True))
                    tracker.record(step, epoch, weighted, sum(sequences))
                    epoch_loss += sum(t.loss_sum for t in totals)
                    epoch_tokens += sum(t.count for t in totals)
                    read_total += sum(t.read for t in totals)
            train_loss = epoch_loss / max(epoch_tokens, 1.0)
            self._end_of_epoch(epoch, train_loss)
            epoch_loss, epoch_tokens = 0.0, 0.0
        return LanguageLoopResult(
            steps=step,
            total_steps=self.total_steps,
            resumed_from_step=start_step,
            train_loss=None if train_loss is None else round(train_loss, 6),
            samples_per_second=tracker.samples_per_second,
            final_progress=tracker.latest,
            tokens_per_second=read_total / max(time.monotonic() - began, 1e-9),
        )

    def _end_of_epoch(self, epoch: int, train_loss: float) -> None:
        fields: dict[str, float] = {"epoch": epoch + 1, "train_loss": round(train_loss, 6)}
        if self.topology.is_chief and len(self.validation):
            scores = metrics.language_modelling(self.model, self.validation, self.device, self.task.batch_size)
            fields.update(
                validation_loss=round(scores["loss"], 6), validation_perplexity=round(scores["perplexity"], 4)
            )
            if self.history is not None:
                self.history.record(
                    (epoch + 1) * self.steps_per_epoch, "validation",
                    {"loss": scores["loss"], "perplexity": scores["perplexity"]}, epoch=epoch + 1,
                )
        logs.info("epoch_finished", **fields)
