"""Where a model came from: data, code, configuration, who asked, and what it produced. Recorded
in the job's status and copied into its ModelVersion, which outlives the job."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import ConfigDict, Field

from kubetrain.api.base import CamelModel

SUBMITTED_BY_ANNOTATION = "kubetrain.io/submitted-by"


class DatasetProfile(CamelModel):
    """Counted by the trainer's ingest or the SDK (kubetrain_trainer.profile); each field only
    where it applies (class balance for labelled data, tokens for text)."""

    model_config = ConfigDict(extra="ignore")

    rows: int | None = Field(default=None, ge=0, description="Examples (rows, records or documents).")
    columns: int | None = Field(default=None, ge=0, description="Columns of a table.")
    missing_values: int | None = Field(
        default=None, ge=0, description="Missing cells (empty, null or NaN); for text, empty documents."
    )
    classes: int | None = Field(default=None, ge=0, description="Distinct labels.")
    class_counts: dict[str, int] = Field(
        default_factory=dict, description="Examples per label (up to 20 labels; beyond, only classes and balance)."
    )
    balance: float | None = Field(
        default=None, ge=0, le=1, description="Smallest class over largest: 1 is balanced, near 0 very imbalanced."
    )
    tokens: int | None = Field(default=None, ge=0, description="Tokens of a text corpus, by the code's tokenizer.")


class Artifact(CamelModel):
    """One exported file or folder the trainer wrote and hashed."""

    model_config = ConfigDict(extra="ignore")

    uri: str = Field(description="Where it lies.")
    digest: str = Field(description="sha256:<hex> of the file, or of a folder's manifest (sha256sum lines).")


class SweepProvenance(CamelModel):
    """The TrainingSweep a run was a trial of: what the search chose, and within what."""

    sweep: str = Field(description="Name of the TrainingSweep.")
    trial: int = Field(ge=0, description="The trial's index in the sweep.")
    parameters: dict[str, Any] = Field(
        default_factory=dict, description="The values the sweep chose, by spec.task path.",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )
    search_space: dict[str, Any] = Field(
        default_factory=dict, description="The sweep's algorithm, objective and parameters (its search space).",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )


class Provenance(CamelModel):
    submitted_by: str | None = Field(
        default=None,
        description="Who created the job, from the API server's authenticated user at CREATE (annotation "
        "kubetrain.io/submitted-by, set by the operator's mutating webhook); unset without the webhook.",
    )
    dataset_uri: str | None = Field(
        default=None,
        description="The data set the training code reported reading, else spec.dataset.uri; unset when neither "
        "names one.",
    )
    dataset_digest: str | None = Field(
        default=None, description="sha256:<hex> of the data set's bytes, computed by the trainer when it read it."
    )
    dataset_profile: DatasetProfile | None = Field(
        default=None, description="What the trainer counted in the data set it read."
    )
    dataset_license: str | None = Field(default=None, description="spec.dataset.license.")
    dataset_consent_basis: str | None = Field(default=None, description="spec.dataset.consentBasis.")
    trainer_image: str = Field(description="Container image of the workers, as the job names it.")
    trainer_image_digest: str | None = Field(
        default=None,
        description="sha256:<hex> the image reference resolved to on rank 0's node (its container's imageID); "
        "unset where the runtime reports none.",
    )
    code_version: str | None = Field(default=None, description="The trainer's version, as it reported it.")
    config: dict[str, Any] = Field(
        default_factory=dict,
        description="spec.task with every default filled in: the full training configuration.",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )
    start_time: datetime | None = Field(default=None, description="When the workers were started.")
    completion_time: datetime | None = Field(default=None, description="When the job finished.")
    weights_uri: str | None = Field(default=None, description="The exported weights (model.safetensors).")
    weights_digest: str | None = Field(default=None, description="sha256:<hex> of the exported weights.")
    model_card_uri: str | None = Field(default=None, description="The model card (model-card.json) next to them.")
    exports: dict[str, Artifact] = Field(
        default_factory=dict,
        description="Portable exports beside the weights, by format (onnx: spec.task.exportFormats; adapter, "
        "merged, model: a causal-lm's Hugging Face folders), each with its digest.",
    )

    sweep: SweepProvenance | None = Field(default=None, description="The TrainingSweep this run was a trial of.")
