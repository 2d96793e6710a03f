"""Kueue's `Workload` (`kueue.x-k8s.io/v1beta2`, Kueue v0.17) and `ResourceFlavor`: the shapes of
the fields the operator writes and reads when a TrainingJob is queued by Kueue.

A TrainingJob labelled `kueue.x-k8s.io/queue-name` is described to Kueue by one Workload the
operator creates and owns (Kueue builds no controller for a foreign kind: TrainingJob is one of
its `integrations.externalFrameworks`). Kueue admits the Workload (status.admission: the
ClusterQueue and, per pod set, the ResourceFlavor of each resource) or evicts it; the operator
starts or stops the job's pods accordingly and reports the end with the `Finished` condition.
Not kubetrain CRDs: the operator handles them as custom objects (controller/kube.py)."""

from __future__ import annotations

from typing import Any, ClassVar, Final, Literal

from pydantic import Field

from kubetrain.api.base import CamelModel
from kubetrain.api.identity import ApiInfo

QUEUE_NAME_LABEL: Final = "kueue.x-k8s.io/queue-name"
PRIORITY_CLASS_LABEL: Final = "kueue.x-k8s.io/priority-class"
KUEUE_GROUP: Final = "kueue.x-k8s.io"
KUEUE_VERSION: Final = "v1beta2"
WORKLOAD_KIND: Final = "Workload"

# Workload condition types (kueue apis/kueue/v1beta2/workload_types.go).
QUOTA_RESERVED: Final = "QuotaReserved"
ADMITTED: Final = "Admitted"
EVICTED: Final = "Evicted"
FINISHED: Final = "Finished"


class PodSet(CamelModel):
    name: str = Field(description="The role (worker, head): one pod set per role of the job.")
    count: int = Field(ge=1, description="Pods of the role.")
    min_count: int | None = Field(
        default=None,
        ge=1,
        description="The fewest pods of the role the job runs with (an elastic job's minWorkers): Kueue may "
        "admit it partially, with any count from this to count.",
    )
    template: dict[str, Any] = Field(description="A PodTemplateSpec holding the pods' resource requests.")


class PriorityClassRef(CamelModel):
    group: Literal["kueue.x-k8s.io"] = Field(default="kueue.x-k8s.io", description="Kueue's API group.")
    kind: Literal["WorkloadPriorityClass"] = Field(default="WorkloadPriorityClass", description="Kueue's kind.")
    name: str = Field(description="The WorkloadPriorityClass named by the job's kueue.x-k8s.io/priority-class label.")


class WorkloadSpec(CamelModel):
    queue_name: str = Field(description="The LocalQueue, from the job's kueue.x-k8s.io/queue-name label.")
    pod_sets: list[PodSet] = Field(description="What the job needs, role by role.")
    priority_class_ref: PriorityClassRef | None = Field(default=None, description="The job's priority, if any.")
    priority: int | None = Field(default=None, description="The class's value (required with priorityClassRef).")


class Workload(CamelModel):
    api_info: ClassVar[ApiInfo] = ApiInfo(
        kind=WORKLOAD_KIND, plural="workloads", singular="workload", short_names=(),
        group=KUEUE_GROUP, version=KUEUE_VERSION,
    )

    api_version: Literal["kueue.x-k8s.io/v1beta2"] = Field(
        default="kueue.x-k8s.io/v1beta2", description="API version: KUEUE_GROUP/KUEUE_VERSION."
    )
    kind: Literal["Workload"] = Field(default=WORKLOAD_KIND, description="Workload.")
    metadata: dict[str, Any] = Field(description="Name, namespace, labels and the owner reference to the job.")
    spec: WorkloadSpec = Field(description="The queue and the pod sets.")


class Placement(CamelModel):
    """Where an admitted pod set's pods must go: the union of its flavours' nodeLabels and
    tolerations (one flavour per resource; usually one for all)."""

    node_selector: dict[str, str] = Field(default_factory=dict, description="The flavours' nodeLabels.")
    tolerations: list[dict[str, Any]] = Field(default_factory=list, description="The flavours' tolerations.")


WORKLOAD_PRIORITY_CLASS: Final = ApiInfo(
    kind="WorkloadPriorityClass", plural="workloadpriorityclasses", singular="workloadpriorityclass",
    short_names=(), group=KUEUE_GROUP, version=KUEUE_VERSION,
)
RESOURCE_FLAVOR: Final = ApiInfo(
    kind="ResourceFlavor", plural="resourceflavors", singular="resourceflavor", short_names=(),
    group=KUEUE_GROUP, version=KUEUE_VERSION,
)
