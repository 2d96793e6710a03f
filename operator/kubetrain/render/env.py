"""A worker's environment, exactly as docs/contracts.md lists it."""

from __future__ import annotations

import json

from kubetrain.api.contract import (
    ELASTIC_LAST_CALL_SECONDS,
    ELASTIC_RENDEZVOUS_BACKEND,
    ELASTIC_RENDEZVOUS_PORT,
    ELASTIC_STORE_TIMEOUT_SECONDS,
    MASTER_PORT,
    TERMINATION_MESSAGE_PATH,
)
from kubetrain.api.job import TrainingJob
from kubetrain.api.provenance import SUBMITTED_BY_ANNOTATION
from kubetrain.api.spec import ElasticPolicy
from kubetrain.render.names import master_addr

TORCHRUN_NAMES = ("NNODES", "NPROC_PER_NODE", "NODE_RANK", "MASTER_ADDR", "MASTER_PORT")


def task_json(job: TrainingJob) -> str | None:
    """spec.task with camelCase keys and unset optionals left out, so the trainer's own defaults
    apply to every knob the user did not choose."""
    if job.spec.task is None:
        return None
    return json.dumps(job.spec.task.to_k8s(), separators=(",", ":"))


def worker_env(job: TrainingJob, index: int, attempt: int, image: str) -> list[dict[str, str]]:
    """`image` and the submitter reach the trainer only so that its model card, a file that
    travels without the cluster's records, names them too."""
    if job.spec.elastic is not None:
        return contract_env(job, attempt, _elastic_env(job, job.spec.elastic, index, attempt), image)
    spec, meta = job.spec, job.metadata
    nproc = spec.nproc_per_node
    distributed = {
        "MASTER_ADDR": master_addr(meta.name),
        "MASTER_PORT": str(MASTER_PORT),
        "WORLD_SIZE": str(spec.workers * nproc),
        "NNODES": str(spec.workers),
        "NODE_RANK": str(index),
        "RANK": str(index * nproc),
        "NPROC_PER_NODE": str(nproc),
    }
    torchrun = {f"PET_{name}": distributed[name] for name in TORCHRUN_NAMES}
    return contract_env(job, attempt, {**distributed, **torchrun}, image)


def _elastic_env(job: TrainingJob, elastic: ElasticPolicy, index: int, attempt: int) -> dict[str, str]:
    """torchrun's options for its dynamic rendezvous, as its PET_* variables: no rank or world size,
    which each round of the rendezvous assigns. Worker 0 hosts the rendezvous store (is_host, not
    torchrun's guess from host names), and the id changes with the attempt, so a whole-group
    restart never meets the rounds of the attempt before."""
    spec, meta = job.spec, job.metadata
    conf = {
        "is_host": "true" if index == 0 else "false",
        "last_call_timeout": str(ELASTIC_LAST_CALL_SECONDS),
        "join_timeout": str(ELASTIC_STORE_TIMEOUT_SECONDS),
        "read_timeout": str(ELASTIC_STORE_TIMEOUT_SECONDS),
    }
    return {
        "NPROC_PER_NODE": str(spec.nproc_per_node),
        "PET_NNODES": f"{elastic.min_workers}:{spec.workers}",
        "PET_NPROC_PER_NODE": str(spec.nproc_per_node),
        "PET_RDZV_BACKEND": ELASTIC_RENDEZVOUS_BACKEND,
        "PET_RDZV_ENDPOINT": f"{master_addr(meta.name)}:{ELASTIC_RENDEZVOUS_PORT}",
        "PET_RDZV_ID": f"{meta.uid}-{attempt}",
        "PET_RDZV_CONF": ",".join(f"{k}={v}" for k, v in conf.items()),
        "PET_MAX_RESTARTS": str(elastic.max_restarts),
        # torchrun's workers otherwise share the agent's store across rounds, and a round whose rank
        # 0 stayed reads the rank addresses the round before left there (peers refuse connections).
        "TORCH_DISABLE_SHARE_RDZV_TCP_STORE": "1",
    }


def contract_env(job: TrainingJob, attempt: int, runtime: dict[str, str], image: str) -> list[dict[str, str]]:
    """The runtime's own variables, then the job's (the same for every runtime), then the user's."""
    spec, meta = job.spec, job.metadata
    kubetrain = {
        "KUBETRAIN_JOB_NAME": meta.name,
        "KUBETRAIN_JOB_NAMESPACE": meta.namespace,
        "KUBETRAIN_JOB_UID": meta.uid,
        "KUBETRAIN_ATTEMPT": str(attempt),
        "KUBETRAIN_TASK": task_json(job),
        "KUBETRAIN_DATASET_URI": spec.dataset.uri if spec.dataset else None,
        "KUBETRAIN_DATASET_LICENSE": spec.dataset.license if spec.dataset else None,
        "KUBETRAIN_DATASET_CONSENT_BASIS": spec.dataset.consent_basis if spec.dataset else None,
        "KUBETRAIN_OUTPUT_URI": spec.output.uri if spec.output else None,
        "KUBETRAIN_TERMINATION_MESSAGE_PATH": TERMINATION_MESSAGE_PATH,
        "KUBETRAIN_IMAGE": image,
        "KUBETRAIN_SUBMITTED_BY": meta.annotations.get(SUBMITTED_BY_ANNOTATION),
        "KUBETRAIN_MODEL_NAME": spec.model.name if spec.model else None,
        "KUBETRAIN_MODEL_INTENDED_USE": spec.model.intended_use if spec.model else None,
        "KUBETRAIN_MODEL_OUT_OF_SCOPE_USE": spec.model.out_of_scope_use if spec.model else None,
        "KUBETRAIN_MODEL_LIMITATIONS": spec.model.limitations if spec.model else None,
    }
    contract = [{"name": k, "value": v} for k, v in {**runtime, **kubetrain}.items() if v is not None]
    return contract + [{"name": var.name, "value": var.value} for var in spec.env]
