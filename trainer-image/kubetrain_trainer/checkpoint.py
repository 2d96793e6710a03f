"""Periodic training checkpoints under `<output>/checkpoints/` with a `latest` pointer.

Each checkpoint and then the pointer are written atomically, so a worker killed at any instant
leaves `latest` naming a complete checkpoint and a restart resumes from it. Each checkpoint the run
stands on (each one saved, and the one a restart resumes from) is also described as
status.lastCheckpoint describes it (step, URI, digest, time; docs/contracts.md) to whoever asked
(the chief's status reporter), as the SDK's `checkpoint()` does for users' code.
"""

from __future__ import annotations

import hashlib
import io
import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from kubetrain_trainer import storage
from kubetrain_trainer.status import rfc3339

DIRECTORY = "checkpoints"
LATEST = "latest"
KEEP = 2


@dataclass(frozen=True)
class Resumed:
    step: int
    epoch: int
    name: str
    steps_per_epoch: int | None  # when saved; None from checkpoints written before they recorded it

    def step_in(self, steps_per_epoch: int) -> int:
        """The step to resume at where an epoch now has `steps_per_epoch` steps: an elastic job
        that re-formed with another world size reads the same examples in fewer or more steps
        (each rank keeps its batch size), so the saved epoch resumes at the same fraction of it."""
        if self.steps_per_epoch is None or self.steps_per_epoch == steps_per_epoch:
            return self.step
        done = self.step - self.epoch * self.steps_per_epoch
        return self.epoch * steps_per_epoch + math.ceil(done * steps_per_epoch / self.steps_per_epoch)


@dataclass(frozen=True)
class Saved:
    step: int
    uri: str
    digest: str  # sha256:<hex> of the checkpoint file's bytes, as storage.content_digest computes it
    time: str

    @classmethod
    def of(cls, step: int, uri: str, blob: bytes, time: str) -> Saved:
        """From the checkpoint's bytes in hand: reading a remote checkpoint back would cost a download."""
        return cls(step, uri, "sha256:" + hashlib.sha256(blob).hexdigest(), time)

    def as_status(self) -> dict[str, Any]:
        """status.lastCheckpoint."""
        return {"step": self.step, "uri": self.uri, "digest": self.digest, "time": self.time}


def _rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class Checkpointer:
    """`trainable_only` keeps just the parameters that train (LoRA adapters: megabytes, where the
    frozen base model is gigabytes and is read again from its own URI on resume). `on_checkpoint`
    hears of every checkpoint once it and the `latest` pointer are written, and of the one a
    restart resumes from."""

    def __init__(
        self, output_uri: str, trainable_only: bool = False, on_checkpoint: Callable[[Saved], None] | None = None
    ) -> None:
        self._dir = storage.join(output_uri, DIRECTORY)
        self._written: list[str] = []
        self._trainable_only = trainable_only
        self._on_checkpoint = on_checkpoint

    def _state(self, model: nn.Module) -> dict[str, torch.Tensor]:
        if not self._trainable_only:
            return model.state_dict()
        return {name: p.detach() for name, p in model.named_parameters() if p.requires_grad}

    def save(
        self, step: int, epoch: int, steps_per_epoch: int, model: nn.Module, optimizer: torch.optim.Optimizer
    ) -> Saved:
        buffer = io.BytesIO()
        written = rfc3339()
        torch.save(
            {
                "time": written,
                "step": step,
                "epoch": epoch,
                "steps_per_epoch": steps_per_epoch,
                "model": self._state(model),
                "optimizer": optimizer.state_dict(),
                "rng": _rng_state(),
            },
            buffer,
        )
        name = f"step-{step}.pt"
        blob = buffer.getvalue()
        uri = storage.join(self._dir, name)
        storage.write_bytes(uri, blob)
        storage.write_bytes(storage.join(self._dir, LATEST), name.encode())
        # A group that grew resumes at a lower step and may save under a name it wrote before: that
        # file is now the newest, and must not be pruned as the oldest.
        self._written = [n for n in self._written if n != name] + [name]
        for old in self._written[:-KEEP]:
            storage.remove(storage.join(self._dir, old))
        del self._written[:-KEEP]
        saved = Saved.of(step, uri, blob, written)
        if self._on_checkpoint is not None:
            self._on_checkpoint(saved)
        return saved

    def read_latest(self) -> tuple[str, bytes] | None:
        pointer = storage.join(self._dir, LATEST)
        if not storage.exists(pointer):
            return None
        name = storage.read_bytes(pointer).decode().strip()
        return name, storage.read_bytes(storage.join(self._dir, name))

    def restore(self, name: str, blob: bytes, model: nn.Module, optimizer: torch.optim.Optimizer) -> Resumed:
        # weights_only=False: the RNG states are numpy/python objects, and the file is one this
        # trainer wrote into the job's own output location.
        state = torch.load(io.BytesIO(blob), map_location="cpu", weights_only=False)
        model.load_state_dict(state["model"], strict=not self._trainable_only)
        optimizer.load_state_dict(state["optimizer"])
        _set_rng_state(state["rng"])
        self._written.append(name)
        if self._on_checkpoint is not None:
            # Checkpoints written before they recorded their time stand at the moment of resuming.
            written = str(state.get("time") or rfc3339())
            self._on_checkpoint(Saved.of(int(state["step"]), storage.join(self._dir, name), blob, written))
        saved_steps_per_epoch = state.get("steps_per_epoch")
        return Resumed(
            step=int(state["step"]),
            epoch=int(state["epoch"]),
            name=name,
            steps_per_epoch=None if saved_steps_per_epoch is None else int(saved_steps_per_epoch),
        )
