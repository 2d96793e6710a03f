"""The TrainingJob resource as the operator reads it from the API server."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar, Literal

from pydantic import ConfigDict, Field

from kubetrain.api.base import CamelModel
from kubetrain.api.contract import API_VERSION, KIND
from kubetrain.api.identity import ApiInfo
from kubetrain.api.spec import TrainingJobSpec
from kubetrain.api.status import TrainingJobStatus


class ObjectMeta(CamelModel):
    """The metadata fields the operator uses; the server's other fields are ignored, not refused."""

    model_config = ConfigDict(extra="ignore")

    name: str = Field(min_length=1, description="Name of the job; the children's names derive from it.")
    namespace: str = Field(default="default", description="Namespace of the job and its children.")
    uid: str = Field(default="", description="Server-assigned identity, used in owner references.")
    generation: int = Field(default=1, description="Spec version, echoed in status.observedGeneration.")
    resource_version: str | None = Field(default=None, description="Optimistic-concurrency token.")
    creation_timestamp: datetime | None = Field(default=None, description="When the job was created.")
    deletion_timestamp: datetime | None = Field(default=None, description="Set once the job is being deleted.")
    labels: dict[str, str] = Field(default_factory=dict, description="Labels of the job.")
    annotations: dict[str, str] = Field(default_factory=dict, description="Annotations of the job.")


class TrainingJob(CamelModel):
    model_config = ConfigDict(extra="ignore")
    api_info: ClassVar[ApiInfo] = ApiInfo(kind=KIND, plural="trainingjobs", singular="trainingjob", short_names=("tj",))

    api_version: Literal["kubetrain.io/v1alpha1"] = Field(default=API_VERSION, description="kubetrain.io/v1alpha1.")
    kind: Literal["TrainingJob"] = Field(default=KIND, description="TrainingJob.")
    metadata: ObjectMeta = Field(description="Standard object metadata.")
    spec: TrainingJobSpec = Field(description="What to train, where, and how to run it.")
    status: TrainingJobStatus = Field(
        default_factory=TrainingJobStatus, description="What the operator and the trainer observed."
    )
