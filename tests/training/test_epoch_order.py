"""EpochOrder draws the same order as torch's DistributedSampler, which the loops used before: the
same examples per rank and epoch, so a run resumed across versions reads what it would have."""

from __future__ import annotations

import pytest
from torch.utils.data import DistributedSampler

from kubetrain_trainer.distributed import EpochOrder
from kubetrain_trainer.environment import Topology

pytestmark = pytest.mark.training


@pytest.mark.parametrize(("size", "world_size"), [(10, 1), (10, 3), (7, 4), (2, 5), (1000, 8)])
@pytest.mark.parametrize("epoch", [0, 3])
def test_each_rank_reads_what_distributed_sampler_gives_it(size: int, world_size: int, epoch: int) -> None:
    for rank in range(world_size):
        topology = Topology(world_size=world_size, rank=rank, local_rank=-1, node_rank=rank, nproc_per_node=1)
        order = EpochOrder(size, topology, seed=11)
        sampler: DistributedSampler[int] = DistributedSampler(
            range(size),  # type: ignore[arg-type]
            num_replicas=world_size, rank=rank, shuffle=True, seed=11,
        )
        sampler.set_epoch(epoch)
        assert order.indices(epoch).tolist() == list(sampler)
        assert len(order) == len(sampler)
