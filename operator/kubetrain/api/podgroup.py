"""Kubernetes' own `PodGroup` (`scheduling.k8s.io/v1beta1`, feature gate GenericWorkload, 1.37):
the shape of the one field set the operator writes, so kube-scheduler binds all of a job's pods or
none. Not a kubetrain CRD: the kubernetes Python client has no model for it, so the operator
creates it as a custom object from this model (controller/kube.py)."""

from __future__ import annotations

from typing import Any, ClassVar, Final, Literal

from pydantic import Field

from kubetrain.api.base import CamelModel
from kubetrain.api.identity import ApiInfo

POD_GROUP_KIND: Final = "PodGroup"
SCHEDULING_GROUP: Final = "scheduling.k8s.io"
SCHEDULING_VERSION: Final = "v1beta1"


class GangSchedulingPolicy(CamelModel):
    min_count: int = Field(ge=1, description="Pods that must fit at once before any of them is bound.")


class PodGroupSchedulingPolicy(CamelModel):
    gang: GangSchedulingPolicy = Field(description="All-or-nothing placement of minCount pods.")


class PodGroupSpec(CamelModel):
    scheduling_policy: PodGroupSchedulingPolicy = Field(description="How the group's pods are placed.")


class PodGroup(CamelModel):
    api_info: ClassVar[ApiInfo] = ApiInfo(
        kind=POD_GROUP_KIND, plural="podgroups", singular="podgroup", short_names=(),
        group=SCHEDULING_GROUP, version=SCHEDULING_VERSION,
    )

    api_version: Literal["scheduling.k8s.io/v1beta1"] = Field(
        default="scheduling.k8s.io/v1beta1", description="API version: SCHEDULING_GROUP/SCHEDULING_VERSION."
    )
    kind: Literal["PodGroup"] = Field(default=POD_GROUP_KIND, description="PodGroup.")
    metadata: dict[str, Any] = Field(description="Name, namespace, labels and the owner reference to the job.")
    spec: PodGroupSpec = Field(description="The gang policy.")
