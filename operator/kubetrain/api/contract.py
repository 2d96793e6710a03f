"""The names docs/contracts.md fixes between the operator, the trainer and the local node.

One place, so the spec validation (which refuses user env vars that would shadow these), the
renderer (which sets them) and the planner (which reads the labels back) cannot drift apart.
"""

from __future__ import annotations

from typing import Final

GROUP: Final = "kubetrain.io"
VERSION: Final = "v1alpha1"
# GROUP/VERSION, written out so that its type is the literal the models' apiVersion fields declare.
API_VERSION: Final = "kubetrain.io/v1alpha1"
KIND: Final = "TrainingJob"
CATEGORIES = ("kubetrain",)

MASTER_PORT = 29500
# torchrun's default c10d rendezvous port, on worker 0, for spec.elastic jobs.
ELASTIC_RENDEZVOUS_PORT = 29400
ELASTIC_RENDEZVOUS_BACKEND = "c10d"
ELASTIC_LAST_CALL_SECONDS = 10
"""How long a rendezvous round that has minWorkers waits for more before training starts."""
ELASTIC_STORE_TIMEOUT_SECONDS = 600
"""How long a worker waits for worker 0's rendezvous store (torchrun's join timeout): pods start
at different times (image pulls), and one that gives up too early fails."""
TRAINER_CONTAINER = "trainer"
TERMINATION_MESSAGE_PATH = "/dev/termination-log"

MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "kubetrain"
# The recommended labels (kubernetes.io/docs: common labels), for dashboards and policies that
# group by them: the trainer of job <name>, in the role <component>.
APP_NAME_LABEL = "app.kubernetes.io/name"
APP_NAME = "kubetrain-trainer"
APP_INSTANCE_LABEL = "app.kubernetes.io/instance"
APP_COMPONENT_LABEL = "app.kubernetes.io/component"
JOB_NAME_LABEL = "kubetrain.io/job-name"
ROLE_LABEL = "kubetrain.io/role"
REPLICA_INDEX_LABEL = "kubetrain.io/replica-index"
ATTEMPT_LABEL = "kubetrain.io/attempt"
WORKERS_LABEL = "kubetrain.io/workers"
WORKER_ROLE = "worker"
HEAD_ROLE = "head"

RAY_GCS_PORT = 6379
RAY_DASHBOARD_PORT = 8265
RAY_CLIENT_PORT = 10001

DISTRIBUTED_ENV_NAMES = (
    "MASTER_ADDR",
    "MASTER_PORT",
    "WORLD_SIZE",
    "NNODES",
    "NODE_RANK",
    "RANK",
    "LOCAL_RANK",
    "NPROC_PER_NODE",
)
RESERVED_ENV_PREFIXES = ("KUBETRAIN_", "PET_")


def is_reserved_env_name(name: str) -> bool:
    """LOCAL_RANK is reserved too although the operator never sets it: the trainer's entrypoint
    derives it per spawned process, and a pod-wide value would give every process the same one."""
    return name in DISTRIBUTED_ENV_NAMES or name.startswith(RESERVED_ENV_PREFIXES)
