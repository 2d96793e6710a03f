"""The model registry: `ModelVersion` (one passing run's weights, metrics and provenance; an
immutable record that outlives its TrainingJob) and `Model` (one model line and which of its
versions is promoted).

Who owns what: `Model.spec.promotedVersion` belongs to users (GitOps, rollback: pin a version);
`Model.status.promotedVersion` belongs to the operator: the pin when set, else the latest
version. The operator never writes a Model's spec; it only creates an empty Model when the first
version of a line is recorded and no Model exists yet.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import ClassVar, Final, Literal

from pydantic import ConfigDict, Field

from kubetrain.api.base import CamelModel
from kubetrain.api.contract import API_VERSION
from kubetrain.api.identity import ApiInfo
from kubetrain.api.provenance import Provenance
from kubetrain.api.status import Condition

MODEL_VERSION_KIND: Final = "ModelVersion"
MODEL_KIND: Final = "Model"

MODEL_LABEL = "kubetrain.io/model"
DATASET_DIGEST_LABEL = "kubetrain.io/dataset-digest"
SOURCE_JOB_LABEL = "kubetrain.io/source-job"
SOURCE_JOB_UID_LABEL = "kubetrain.io/source-job-uid"
# Label values are at most 63 characters; 32 hex digits (128 bits) identify a data set.
DIGEST_LABEL_LENGTH = 32


class ModelConditionType(StrEnum):
    RESOLVED = "Resolved"


class ModelReason(StrEnum):
    """The reasons the operator writes on a Model's Resolved condition and its Events."""

    LATEST = "Latest"
    PINNED = "Pinned"
    PIN_NOT_FOUND = "PinNotFound"
    NO_VERSIONS = "NoVersions"
    PROMOTED = "Promoted"


def version_name(model: str, version: int) -> str:
    return f"{model}-v{version}"


def digest_label(digest: str) -> str:
    """The label value for a `sha256:<hex>` (or bare hex) digest: its first 32 hex digits."""
    return digest.removeprefix("sha256:")[:DIGEST_LABEL_LENGTH]


class RecordMetadata(CamelModel):
    model_config = ConfigDict(extra="ignore")

    name: str = Field(min_length=1, description="Object name.")
    generation: int = Field(default=1, description="Spec version.")
    creation_timestamp: datetime | None = Field(default=None, description="When the version was recorded.")


class SourceJob(CamelModel):
    name: str = Field(description="The TrainingJob that produced this version (it may since have been deleted).")
    uid: str = Field(description="Its uid, unique even when a job of the same name is re-created.")


class ModelVersionSpec(CamelModel):
    model: str = Field(description="The model line (Model name, spec.model.name of the job).")
    version: int = Field(ge=1, description="Sequence number within the line; the name is <model>-v<version>.")
    source_job: SourceJob = Field(description="The run that produced it.")
    metrics: dict[str, float] = Field(default_factory=dict, description="The run's evaluation metrics.")
    gates: list[str] = Field(default_factory=list, description="How each promotion gate was passed.")
    provenance: Provenance = Field(description="Data, code, configuration, submitter and outputs of the run.")


class ModelVersion(CamelModel):
    model_config = ConfigDict(extra="ignore")
    api_info: ClassVar[ApiInfo] = ApiInfo(
        kind=MODEL_VERSION_KIND, plural="modelversions", singular="modelversion", short_names=("mv",)
    )

    api_version: Literal["kubetrain.io/v1alpha1"] = Field(default=API_VERSION, description="API version.")
    kind: Literal["ModelVersion"] = Field(default=MODEL_VERSION_KIND, description="ModelVersion.")
    metadata: RecordMetadata = Field(description="Standard object metadata.")
    spec: ModelVersionSpec = Field(description="The recorded version.")


class ModelSpec(CamelModel):
    promoted_version: str | None = Field(
        default=None,
        min_length=1,
        description="Pin: the ModelVersion (name, e.g. fraud-v2) to serve whatever newer versions exist; set it to "
        "roll back, remove it to follow the latest version again.",
    )
    description: str | None = Field(default=None, description="What the model line is for.")


class ModelStatus(CamelModel):
    promoted_version: str | None = Field(
        default=None, description="The promoted ModelVersion: spec.promotedVersion when set, else the latest one."
    )
    latest_version: str | None = Field(default=None, description="The newest ModelVersion of the line.")
    versions: int = Field(default=0, ge=0, description="ModelVersions of the line.")
    promoted_metrics: dict[str, float] = Field(default_factory=dict, description="Metrics of the promoted version.")
    observed_generation: int | None = Field(default=None, ge=0, description="metadata.generation last resolved.")
    conditions: list[Condition] = Field(
        default_factory=list,
        description="Resolved: whether status.promotedVersion follows the pin (Pinned), the latest version "
        "(Latest), or the pin names no version (PinNotFound).",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )


class Model(CamelModel):
    model_config = ConfigDict(extra="ignore")
    api_info: ClassVar[ApiInfo] = ApiInfo(kind=MODEL_KIND, plural="models", singular="model", short_names=("mdl",))

    api_version: Literal["kubetrain.io/v1alpha1"] = Field(default=API_VERSION, description="API version.")
    kind: Literal["Model"] = Field(default=MODEL_KIND, description="Model.")
    metadata: RecordMetadata = Field(description="Standard object metadata.")
    spec: ModelSpec = Field(default_factory=ModelSpec, description="The user's choices for the line.")
    status: ModelStatus = Field(default_factory=ModelStatus, description="What the operator resolved.")
