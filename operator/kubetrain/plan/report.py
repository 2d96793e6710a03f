"""The trainer's final report, read back from a pod's termination message (docs/contracts.md)."""

from __future__ import annotations

import json
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from kubetrain.api.provenance import Artifact, DatasetProfile


class TrainerReason(StrEnum):
    DIVERGED = "Diverged"
    INVALID_DATA = "InvalidData"
    INVALID_CONFIG = "InvalidConfig"
    TRAINER_ERROR = "TrainerError"


# Retrying these reruns the same data and configuration into the same result.
PERMANENT_REASONS = frozenset({TrainerReason.DIVERGED, TrainerReason.INVALID_DATA, TrainerReason.INVALID_CONFIG})


class ReportedProvenance(BaseModel):
    """What only the trainer knows about a run: the digests of what it read and wrote."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    dataset_uri: str | None = Field(default=None, alias="datasetUri")
    dataset_digest: str | None = Field(default=None, alias="datasetDigest")
    dataset_profile: DatasetProfile | None = Field(default=None, alias="datasetProfile")
    weights_uri: str | None = Field(default=None, alias="weightsUri")
    weights_digest: str | None = Field(default=None, alias="weightsDigest")
    model_card_uri: str | None = Field(default=None, alias="modelCardUri")
    code_version: str | None = Field(default=None, alias="codeVersion")
    exports: dict[str, Artifact] = Field(default_factory=dict)


class TrainerReport(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    outcome: str
    reason: str = ""
    message: str = ""
    metrics: dict[str, float] = Field(default_factory=dict)
    model_uri: str | None = Field(default=None, alias="modelUri")
    provenance: ReportedProvenance | None = None

    @property
    def permanent(self) -> bool:
        return self.reason in PERMANENT_REASONS


def parse_report(message: str | None) -> TrainerReport | None:
    """None when the message is not a report: with FallbackToLogsOnError a crash leaves the log
    tail there instead."""
    if not message:
        return None
    try:
        document = json.loads(message)
    except ValueError:
        return None
    if not isinstance(document, dict):
        return None
    try:
        return TrainerReport.model_validate(document)
    except ValidationError:
        return None
