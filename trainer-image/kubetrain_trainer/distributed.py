"""Process-group setup and the few collectives the loop needs; each is a no-op for one process,
so the loop has a single code path."""

from __future__ import annotations

import datetime as dt
import math
import pickle
from dataclasses import dataclass
from typing import TypeVar

import torch
import torch.distributed as dist

from kubetrain_trainer.environment import Topology

T = TypeVar("T")
# A peer that died without a collective failing (e.g. OOM-killed) must not leave the others
# waiting for the default 30 minutes; the operator restarts the whole group anyway.
COLLECTIVE_TIMEOUT = dt.timedelta(minutes=5)


@dataclass(frozen=True)
class EpochOrder:
    """Which of `size` examples this rank reads in each epoch, in order: DistributedSampler's
    (shuffled by seed + epoch, padded by repeating to a multiple of the world size, every
    world_size-th from this rank's position), drawn as one tensor. Iterating the sampler builds a
    Python int per example, which on a small model cost ~6 % of the epoch's steps."""

    size: int
    topology: Topology
    seed: int

    def __len__(self) -> int:
        """Examples per rank and epoch, the same on every rank (the padding sees to it)."""
        return math.ceil(self.size / self.topology.world_size)

    def indices(self, epoch: int) -> torch.Tensor:
        generator = torch.Generator()
        generator.manual_seed(self.seed + epoch)
        shuffled = torch.randperm(self.size, generator=generator)
        total = len(self) * self.topology.world_size
        padded = shuffled.repeat(math.ceil(total / max(self.size, 1)))[:total]
        return padded[self.topology.rank :: self.topology.world_size]


def device_for(topology: Topology) -> torch.device:
    if torch.cuda.is_available():
        index = max(topology.local_rank, 0) % torch.cuda.device_count()
        torch.cuda.set_device(index)
        return torch.device("cuda", index)
    return torch.device("cpu")


def init(topology: Topology, device: torch.device) -> None:
    """A no-op where the runtime has already set up the group (Ray Train does, for its workers)."""
    if not topology.distributed or active():
        return
    dist.init_process_group(
        backend="nccl" if device.type == "cuda" else "gloo",
        init_method="env://",  # MASTER_ADDR / MASTER_PORT, as the operator renders them
        world_size=topology.world_size,
        rank=topology.rank,
        timeout=COLLECTIVE_TIMEOUT,
    )


def active() -> bool:
    return dist.is_available() and dist.is_initialized()


def all_reduce_sum(values: torch.Tensor) -> torch.Tensor:
    if active():
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values


def broadcast_from_chief(value: T) -> T:
    """Rank 0's value on every rank, so all ranks act on one decision (e.g. which checkpoint)."""
    if not active():
        return value
    box = [pickle.dumps(value)]
    dist.broadcast_object_list(box, src=0)
    return pickle.loads(box[0])


def all_gather(value: T) -> list[T]:
    """Every rank's value, in rank order, on every rank ([value] for one process)."""
    if not active():
        return [value]
    gathered: list[T | None] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, value)
    return [item for item in gathered if item is not None]


def barrier() -> None:
    if active():
        dist.barrier()


def shutdown() -> None:
    if active():
        dist.destroy_process_group()
