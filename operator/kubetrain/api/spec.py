"""`TrainingJob.spec`: what the user asks for. Every field's description is its `kubectl explain`."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from kubetrain.api.base import CamelModel
from kubetrain.api.contract import DISTRIBUTED_ENV_NAMES, RESERVED_ENV_PREFIXES, is_reserved_env_name
from kubetrain.api.evaluation import EvaluationSpec, ModelRef
from kubetrain.api.podspec import duplicate_env, key_errors, label_errors, shape_errors, without_nulls
from kubetrain.api.task import TaskSpec

ENV_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
URI_PATTERN = r"^(file|pvc|s3|gs)://.+"
# The API machinery's own resource.Quantity pattern, as controller-gen emits it.
QUANTITY_PATTERN = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)
MAX_ENV_VARS = 64

Quantity = Annotated[
    str,
    BeforeValidator(lambda v: str(v) if isinstance(v, int) and not isinstance(v, bool) else v),
    StringConstraints(pattern=QUANTITY_PATTERN),
    WithJsonSchema(
        {
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "pattern": QUANTITY_PATTERN,
            "x-kubernetes-int-or-string": True,
        }
    ),
]
"""A Kubernetes resource quantity. YAML users write `cpu: 4` as often as `cpu: "4"`, so both are
accepted, like in a PodSpec."""
MAX_ENV_NAME_LENGTH = 128


def _reserved_env_rule() -> str:
    prefixes = " && ".join(f"!self.name.startsWith('{p}')" for p in RESERVED_ENV_PREFIXES)
    names = ", ".join(f"'{n}'" for n in DISTRIBUTED_ENV_NAMES)
    return f"{prefixes} && !(self.name in [{names}])"


def duplicate_env_message(path: str, name: str, first: str) -> str:
    """The refusal of a variable set twice: one of the two values would be dropped silently (the
    kubelet keeps the last; the operator's merge keeps spec.env over the template's)."""
    return f"{path}: {name} is also set at {first}, and only one of the values would reach the pod; set it once"


RESERVED_ENV_MESSAGE = (
    "spec.env: names starting with KUBETRAIN_ or PET_ and the distributed names "
    f"({', '.join(DISTRIBUTED_ENV_NAMES)}) are set by the operator (docs/contracts.md); rename the variable"
)


DATA_REQUIRED_MESSAGE = (
    "spec.dataset and spec.output are required unless spec.command is set: the built-in trainer reads "
    "spec.dataset.uri and writes the model to spec.output.uri; set both, or run your own code with spec.command"
)


class Runtime(StrEnum):
    PYTORCH = "pytorch"
    RAY = "ray"


class CleanPodPolicy(StrEnum):
    RUNNING = "Running"
    ALL = "All"
    NONE = "None"


class StallPolicy(StrEnum):
    """What runPolicy.progressDeadlineSeconds does to a job whose trainer went silent."""

    RESTART = "Restart"
    FAIL = "Fail"


class GangScheduling(StrEnum):
    """Auto: each attempt's pods form one PodGroup (scheduling.k8s.io/v1beta1) where the cluster
    serves that API and the operator's --gang-scheduling allows it, so kube-scheduler binds all of
    them or none; elsewhere pods are placed one by one, as before. Off: always one by one."""

    AUTO = "Auto"
    OFF = "Off"


class DataLocation(CamelModel):
    uri: str = Field(
        pattern=URI_PATTERN,
        description="Where the data lives: file:///path, pvc://claim/path, s3://bucket/key or gs://bucket/key.",
    )


MAX_TERMS_LENGTH = 256


class Dataset(DataLocation):
    """The data a job trains on, and the terms it may be used under: both go into status.provenance
    and the model card, so a model can be traced to the licence and consent of its data."""

    license: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_TERMS_LENGTH,
        description="The data's licence, an SPDX identifier where one exists (e.g. CC-BY-4.0) or the name of the "
        "agreement it was obtained under; a DataResidencyPolicy's requiredDatasetFields may require it.",
    )
    consent_basis: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_TERMS_LENGTH,
        description="The basis on which the data may be used for training, e.g. consent, contract, "
        "legitimate-interests, public-domain or not-personal-data; a DataResidencyPolicy's requiredDatasetFields "
        "may require it.",
    )


class Resources(CamelModel):
    cpu: Quantity | None = Field(default=None, description="CPU request of each worker pod, e.g. 4 or 500m.")
    memory: Quantity | None = Field(
        default=None,
        description="Memory of each worker pod (request and limit), e.g. 16Gi.",
    )
    gpus: int = Field(
        default=0,
        ge=0,
        description="GPUs of each worker pod (request and limit); at most the node pool's GPUs per node.",
    )


class EnvVar(CamelModel):
    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [{"rule": _reserved_env_rule(), "message": RESERVED_ENV_MESSAGE}]
        }
    )

    name: str = Field(
        pattern=ENV_NAME_PATTERN,
        max_length=MAX_ENV_NAME_LENGTH,
        description="Variable name (letters, digits, underscores; not starting with a digit).",
    )
    value: str = Field(default="", description="Variable value.")

    @field_validator("name")
    @classmethod
    def _not_reserved(cls, name: str) -> str:
        if is_reserved_env_name(name):
            raise ValueError(RESERVED_ENV_MESSAGE)
        return name


class PodTemplateMetadata(CamelModel):
    labels: dict[str, str] = Field(
        default_factory=dict, description="Extra labels of every worker pod; the operator's own labels win."
    )
    annotations: dict[str, str] = Field(default_factory=dict, description="Extra annotations of every worker pod.")

    @model_validator(mode="after")
    def _valid_keys(self) -> PodTemplateMetadata:
        problems = label_errors("spec.podTemplate.metadata.labels", self.labels)
        problems += [
            e for key in self.annotations for e in key_errors(f"spec.podTemplate.metadata.annotations[{key}]", key)
        ]
        if problems:
            raise ValueError("; ".join(problems))
        return self


class PodTemplate(CamelModel):
    metadata: PodTemplateMetadata = Field(
        default_factory=PodTemplateMetadata, description="Labels and annotations added to every worker pod."
    )
    spec: dict[str, Any] = Field(
        default_factory=dict,
        description="A partial PodSpec merged into every worker pod (volumes, serviceAccountName, securityContext, "
        "a `trainer` container with volumeMounts, ...). The operator's fields win: the env contract, "
        "hostname, subdomain, restartPolicy, placement and resources.",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )

    @field_validator("spec")
    @classmethod
    def _pod_spec_shape(cls, spec: dict[str, Any]) -> dict[str, Any]:
        problems = shape_errors(spec, "V1PodSpec", "spec.podTemplate.spec")
        if problems:
            raise ValueError("; ".join(problems) + " (a core/v1 PodSpec, kubectl explain pod.spec)")
        return dict(without_nulls(spec))


class RunPolicy(CamelModel):
    backoff_limit: int = Field(
        default=3,
        ge=0,
        description="Whole-group restarts allowed before the job fails with BackoffLimitExceeded "
        "(a restart replaces every worker, whichever one failed).",
    )
    active_deadline_seconds: int | None = Field(
        default=None,
        ge=1,
        description="Seconds from status.startTime after which the job fails with DeadlineExceeded; "
        "the clock restarts when a suspended job resumes.",
    )
    ttl_seconds_after_finished: int | None = Field(
        default=None,
        ge=0,
        description="Seconds after status.completionTime after which the finished job is deleted; unset keeps it.",
    )
    suspend: bool = Field(
        default=False, description="True deletes the workers and holds the job; False (again) starts it."
    )
    clean_pod_policy: CleanPodPolicy = Field(
        default=CleanPodPolicy.RUNNING,
        description="Pods to delete when the job finishes: Running (those not terminated), All, or None.",
    )
    progress_deadline_seconds: int | None = Field(
        default=None,
        ge=1,
        description="Seconds the running job may go without a progress report (status.progress.updateTime, "
        "written by the trainer or the SDK) before it is Stalled and handled as runPolicy.onStall says; counted "
        "from the later of the last report and the moment every worker ran (Running=True). Unset: no stall "
        "detection.",
    )
    on_stall: StallPolicy = Field(
        default=StallPolicy.RESTART,
        description="What a stall (runPolicy.progressDeadlineSeconds exceeded) does: Restart replaces the whole "
        "group, a restart counted against runPolicy.backoffLimit like a failure; Fail fails the job.",
    )
    gang_scheduling: GangScheduling = Field(
        default=GangScheduling.AUTO,
        description="Auto: each attempt's pods form one PodGroup (scheduling.k8s.io/v1beta1, Kubernetes 1.37 "
        "with the GenericWorkload gate) that kube-scheduler binds all at once or not at all, where the cluster "
        "serves it and the operator allows it; Off: pods are scheduled one by one. Applies from the next attempt.",
    )


RAY_OWNED_START_PARAMS = (
    "address",
    "head",
    "block",
    "port",
    "num-cpus",
    "num-gpus",
    "dashboard-host",
    "dashboard-port",
    "ray-client-server-port",
)
RAY_MAX_START_PARAMS = 32
RAY_START_PARAM_PATTERN = r"^[a-z][a-z0-9-]*$"
RAY_START_PARAMS_MESSAGE = (
    "spec.ray.rayStartParams: keys are `ray start` flags without the leading dashes (e.g. object-store-memory); "
    f"the operator sets {', '.join(RAY_OWNED_START_PARAMS)} itself; remove those keys"
)


class HeadResources(CamelModel):
    cpu: Quantity | None = Field(default=None, description="CPU request of the Ray head pod, e.g. 2 or 500m.")
    memory: Quantity | None = Field(default=None, description="Memory of the Ray head pod (request and limit).")


class RaySpec(CamelModel):
    """The Ray cluster of a `runtime: ray` job: its head runs the driver, its workers the training."""

    head_resources: HeadResources = Field(
        default_factory=HeadResources,
        description="Resources of the Ray head pod; it gets no GPUs (it runs the GCS and the driver, not training).",
    )
    ray_start_params: dict[str, str] = Field(
        default_factory=dict,
        max_length=RAY_MAX_START_PARAMS,  # bounds the CEL rule's estimated cost for the API server
        description="Extra `ray start` flags of every Ray pod, head and workers alike (so no head-only flag "
        "such as include-dashboard), without the leading dashes, e.g. {object-store-memory: '200000000'}; "
        "the flags the operator sets are refused.",
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "self.all(k, k.matches('" + RAY_START_PARAM_PATTERN + "') && !(k in ["
                    + ", ".join(f"'{k}'" for k in RAY_OWNED_START_PARAMS)
                    + "]))",
                    "message": RAY_START_PARAMS_MESSAGE,
                }
            ]
        },
    )
    max_worker_failures: int = Field(
        default=3,
        ge=0,
        description="Times Ray Train restarts its worker group inside one attempt when a worker dies (the "
        "operator replaces the dead Ray worker pod alone; training resumes from the last checkpoint); beyond "
        "that the driver fails and the head's failure counts against runPolicy.backoffLimit.",
    )

    @field_validator("ray_start_params")
    @classmethod
    def _not_owned(cls, params: dict[str, str]) -> dict[str, str]:
        for key in params:
            if key in RAY_OWNED_START_PARAMS or not re.match(RAY_START_PARAM_PATTERN, key):
                raise ValueError(f"{key!r} is not allowed: {RAY_START_PARAMS_MESSAGE}")
        return params


ELASTIC_MIN_MESSAGE = (
    "spec.elastic.minWorkers must not exceed spec.workers (the most workers an elastic job runs); "
    "lower spec.elastic.minWorkers or raise spec.workers"
)
ELASTIC_RUNTIME_MESSAGE = (
    "spec.elastic applies to runtime: pytorch (torchrun's dynamic rendezvous); a Ray job already replaces "
    "lost workers alone (spec.ray.maxWorkerFailures): remove spec.elastic"
)


class ElasticPolicy(CamelModel):
    """An elastic PyTorch job runs with any worker count from minWorkers to spec.workers: torchrun's
    c10d rendezvous re-forms the group when a worker leaves or joins, so losing one above the
    minimum costs a re-rendezvous and a resume from the last checkpoint, not a whole-group restart."""

    min_workers: int = Field(
        ge=1,
        description="The fewest workers the job trains with: it starts once this many run, and a loss that "
        "leaves fewer restarts the whole group (counted against runPolicy.backoffLimit). spec.workers is the most.",
    )
    max_restarts: int = Field(
        default=3,
        ge=0,
        description="Times the group may re-form in place within one attempt after losing a worker (torchrun "
        "--max-restarts); one loss more restarts the whole group. Workers joining do not count.",
    )


class TrainingJobSpec(CamelModel):
    """Cross-field rules live here and, word for word, in the CRD's CEL rules, so `kubectl apply`
    and a local model_validate refuse the same manifests with the same message."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "(has(self.command) && size(self.command) > 0) || has(self.task)",
                    "message": "spec.task is required unless spec.command is set: the default trainer "
                    "entrypoint needs spec.task to know what to train",
                },
                {
                    "rule": "(has(self.command) && size(self.command) > 0) || (has(self.dataset) && has(self.output))",
                    "message": DATA_REQUIRED_MESSAGE,
                },
                {
                    "rule": "!has(self.elastic) || self.elastic.minWorkers <= self.workers",
                    "message": ELASTIC_MIN_MESSAGE,
                },
                {
                    "rule": "!has(self.elastic) || self.runtime == 'pytorch'",
                    "message": ELASTIC_RUNTIME_MESSAGE,
                },
                {
                    "rule": "!has(self.resources) || self.resources.gpus == 0 || has(self.nodePool)",
                    "message": "spec.nodePool is required when spec.resources.gpus > 0: set it to a GPU pool "
                    "such as a100-eu or h100-us",
                },
            ]
        }
    )

    runtime: Runtime = Field(default=Runtime.PYTORCH, description="Distributed runtime: pytorch (DDP) or ray.")
    image: str | None = Field(
        default=None,
        min_length=1,
        description="Container image of the workers; unset uses the operator's trainer image.",
    )
    command: list[str] | None = Field(
        default=None,
        description="Entrypoint of the workers (runtime: ray: the driver the head runs once every Ray worker "
        "joined); unset runs the kubetrain trainer with spec.task.",
    )
    args: list[str] | None = Field(default=None, description="Arguments of the entrypoint.")
    task: TaskSpec | None = Field(
        default=None, description="The trainer's configuration, passed to it as KUBETRAIN_TASK (JSON)."
    )
    workers: int = Field(
        default=1, ge=1, description="Worker pods; each runs nprocPerNode processes (with spec.elastic: the most)."
    )
    nproc_per_node: int = Field(default=1, ge=1, description="Processes per worker pod (usually its GPU count).")
    elastic: ElasticPolicy | None = Field(
        default=None,
        description="Run with any worker count from elastic.minWorkers to spec.workers, surviving the loss of "
        "workers above the minimum and growing back when capacity returns (runtime: pytorch; docs/elastic.md). "
        "Unset: exactly spec.workers, and any loss restarts the whole group.",
    )
    resources: Resources = Field(default_factory=Resources, description="Resources of each worker pod.")
    node_pool: str | None = Field(
        default=None,
        min_length=1,
        description="Node pool of the workers, by name in the operator's catalogue (e.g. a100-eu); "
        "sets node selector, tolerations and region affinity.",
    )
    pod_template: PodTemplate = Field(
        default_factory=PodTemplate, description="Escape hatch merged into every worker pod."
    )
    dataset: Dataset | None = Field(
        default=None,
        description="The training data (read by every worker), with its licence and consent basis; required for the "
        "built-in trainer, optional with spec.command (code that makes or fetches its own data).",
    )
    output: DataLocation | None = Field(
        default=None,
        description="Where checkpoints, the model and its card are written; required for the built-in trainer, "
        "optional with spec.command.",
    )
    env: list[EnvVar] = Field(
        default_factory=list,
        max_length=MAX_ENV_VARS,
        description="Extra environment variables of the workers, after the operator's own; each name once.",
        # A map keyed by name, like a container's env: the API server refuses a name given twice
        # ("Duplicate value" naming it), and server-side apply merges entries by name.
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    run_policy: RunPolicy = Field(default_factory=RunPolicy, description="Restarts, deadlines, suspension, cleanup.")
    ray: RaySpec = Field(
        default_factory=RaySpec, description="The Ray cluster of a runtime: ray job (ignored by runtime: pytorch)."
    )
    model: ModelRef | None = Field(
        default=None, description="Model line this job trains; unset records no ModelVersion."
    )
    evaluation: EvaluationSpec | None = Field(
        default=None, description="Promotion gates on the final metrics (only with spec.model)."
    )

    @model_validator(mode="after")
    def _cross_field(self) -> TrainingJobSpec:
        if not self.command and self.task is None:
            raise ValueError(
                "spec.task is required unless spec.command is set: the default trainer entrypoint needs "
                "spec.task to know what to train"
            )
        if not self.command and (self.dataset is None or self.output is None):
            raise ValueError(DATA_REQUIRED_MESSAGE)
        if self.elastic is not None and self.elastic.min_workers > self.workers:
            raise ValueError(ELASTIC_MIN_MESSAGE)
        if self.elastic is not None and self.runtime != Runtime.PYTORCH:
            raise ValueError(ELASTIC_RUNTIME_MESSAGE)
        if self.resources.gpus > 0 and self.node_pool is None:
            raise ValueError(
                "spec.nodePool is required when spec.resources.gpus > 0: set it to a GPU pool such as a100-eu "
                "or h100-us"
            )
        problems = [duplicate_env_message(*d) for d in _duplicate_spec_env(self.env)]
        problems += [
            duplicate_env_message(*d) for d in duplicate_env(self.pod_template.spec, [v.name for v in self.env])
        ]
        if problems:
            raise ValueError("; ".join(problems))
        return self


def _duplicate_spec_env(env: list[EnvVar]) -> list[tuple[str, str, str]]:
    first: dict[str, str] = {}
    duplicates = []
    for index, var in enumerate(env):
        path = f"spec.env[{index}].name"
        if var.name in first:
            duplicates.append((path, var.name, first[var.name]))
        else:
            first[var.name] = path
    return duplicates
