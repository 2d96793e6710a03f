"""spec.elastic: the pod runs torchrun's elastic agent instead of the trainer itself. The operator
sets torchrun's options as PET_* variables (docs/contracts.md); the agent joins the c10d
rendezvous on worker 0, starts the trainer with the RANK and WORLD_SIZE of the round it joined,
and starts it again (with a new world size) each time a worker leaves or joins. The trainer then
resumes from the last checkpoint, re-sharding the data over the new world (EpochOrder,
Resumed.step_in)."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import NoReturn

RENDEZVOUS_VARIABLE = "PET_RDZV_ENDPOINT"
# Set by torchrun in every worker it starts: such a process is a worker, not a pod to launch.
AGENT_VARIABLE = "TORCHELASTIC_RUN_ID"


def wanted(env: Mapping[str, str]) -> bool:
    return bool(env.get(RENDEZVOUS_VARIABLE)) and AGENT_VARIABLE not in env


def launch() -> NoReturn:
    """Replaces this process, so the kubelet's SIGTERM reaches the agent: it stops the trainer
    (which checkpoints with its peers, kubetrain_trainer.stopping) and leaves the rendezvous open
    for the workers that stay."""
    os.execv(sys.executable, [sys.executable, "-m", "torch.distributed.run", "-m", "kubetrain_trainer"])
