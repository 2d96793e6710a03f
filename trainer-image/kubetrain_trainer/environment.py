"""What the operator tells a worker process through its environment (docs/contracts.md)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from kubetrain_trainer.errors import InvalidConfig

DEFAULT_SERVICEACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
DEFAULT_TERMINATION_MESSAGE_PATH = "/dev/termination-log"


def int_var(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as error:
        raise InvalidConfig(f"{name}={raw!r} is not an integer") from error


@dataclass(frozen=True)
class Topology:
    """Where this process sits in the job. The pod's RANK is its first process's global rank;
    LOCAL_RANK is set only for the processes the entrypoint spawns when NPROC_PER_NODE > 1."""

    world_size: int
    rank: int
    local_rank: int
    node_rank: int
    nproc_per_node: int

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_chief(self) -> bool:
        return self.rank == 0

    @property
    def needs_local_spawn(self) -> bool:
        return self.nproc_per_node > 1 and self.local_rank < 0

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Topology:
        nproc = int_var(env, "NPROC_PER_NODE", 1)
        node_rank = int_var(env, "NODE_RANK", 0)
        local_rank = int_var(env, "LOCAL_RANK", -1)
        rank = int_var(env, "RANK", node_rank * nproc)
        world_size = int_var(env, "WORLD_SIZE", 1)
        if nproc < 1 or world_size < 1 or not 0 <= rank < world_size:
            raise InvalidConfig(f"inconsistent topology: RANK={rank} WORLD_SIZE={world_size} NPROC_PER_NODE={nproc}")
        if world_size > 1 and not (env.get("MASTER_ADDR") and env.get("MASTER_PORT")):
            raise InvalidConfig("WORLD_SIZE > 1 needs MASTER_ADDR and MASTER_PORT for the rendezvous")
        return cls(
            world_size=world_size,
            rank=rank,
            local_rank=local_rank,
            node_rank=node_rank,
            nproc_per_node=nproc,
        )


@dataclass(frozen=True)
class JobEnvironment:
    namespace: str
    name: str
    uid: str
    attempt: int
    task_json: str | None
    dataset_uri: str
    dataset_license: str | None
    dataset_consent_basis: str | None
    output_uri: str
    termination_message_path: str
    serviceaccount_dir: str
    api_host: str | None
    api_port: str
    code_version: str | None
    image: str | None
    submitted_by: str | None
    topology: Topology
    # spec.model: the line's name and the integrator documentation the model card carries.
    model_name: str | None = None
    intended_use: str | None = None
    out_of_scope_use: str | None = None
    limitations: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> JobEnvironment:
        env = os.environ if env is None else env
        return cls(
            namespace=env.get("KUBETRAIN_JOB_NAMESPACE", "default"),
            name=env.get("KUBETRAIN_JOB_NAME", "local"),
            uid=env.get("KUBETRAIN_JOB_UID", ""),
            attempt=int_var(env, "KUBETRAIN_ATTEMPT", 0),
            task_json=env.get("KUBETRAIN_TASK"),
            dataset_uri=env.get("KUBETRAIN_DATASET_URI", ""),
            dataset_license=env.get("KUBETRAIN_DATASET_LICENSE") or None,
            dataset_consent_basis=env.get("KUBETRAIN_DATASET_CONSENT_BASIS") or None,
            output_uri=env.get("KUBETRAIN_OUTPUT_URI", ""),
            termination_message_path=env.get("KUBETRAIN_TERMINATION_MESSAGE_PATH", DEFAULT_TERMINATION_MESSAGE_PATH),
            serviceaccount_dir=env.get("KUBETRAIN_SERVICEACCOUNT_DIR", DEFAULT_SERVICEACCOUNT_DIR),
            api_host=env.get("KUBERNETES_SERVICE_HOST") or None,
            api_port=env.get("KUBERNETES_SERVICE_PORT", "443"),
            code_version=env.get("KUBETRAIN_CODE_VERSION") or None,
            image=env.get("KUBETRAIN_IMAGE") or None,
            submitted_by=env.get("KUBETRAIN_SUBMITTED_BY") or None,
            topology=Topology.from_env(env),
            model_name=env.get("KUBETRAIN_MODEL_NAME") or None,
            intended_use=env.get("KUBETRAIN_MODEL_INTENDED_USE") or None,
            out_of_scope_use=env.get("KUBETRAIN_MODEL_OUT_OF_SCOPE_USE") or None,
            limitations=env.get("KUBETRAIN_MODEL_LIMITATIONS") or None,
        )

    def require_uris(self) -> None:
        """The built-in trainer reads spec.dataset and writes spec.output; a job running its own
        command may leave them out, so the API admits a job without them that names a command."""
        if not self.dataset_uri:
            raise InvalidConfig("KUBETRAIN_DATASET_URI is not set: the built-in trainer needs spec.dataset.uri")
        if not self.output_uri:
            raise InvalidConfig("KUBETRAIN_OUTPUT_URI is not set: the built-in trainer needs spec.output.uri")

    def data_terms(self) -> dict[str, str]:
        """spec.dataset's licence and consent basis, as the model card records them (unset: absent)."""
        terms = {"license": self.dataset_license, "consentBasis": self.dataset_consent_basis}
        return {key: value for key, value in terms.items() if value}

    def model_docs(self) -> dict[str, str]:
        """spec.model's name and documentation, as the model card records them (unset: absent)."""
        docs = {
            "name": self.model_name,
            "intendedUse": self.intended_use,
            "outOfScopeUse": self.out_of_scope_use,
            "limitations": self.limitations,
        }
        return {key: value for key, value in docs.items() if value}
