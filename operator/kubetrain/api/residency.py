"""`DataResidencyPolicy` (cluster-scoped): where the TrainingJobs of the namespaces it selects may
run, read and write. Every list is an allow-list; a field left unset does not constrain, an
empty list allows nothing. Several policies selecting one namespace combine to their
intersection (kubetrain.policy)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import ClassVar, Final, Literal

from pydantic import ConfigDict, Field, model_validator

from kubetrain.api.base import CamelModel
from kubetrain.api.contract import API_VERSION
from kubetrain.api.identity import ApiInfo

POLICY_KIND: Final = "DataResidencyPolicy"

SELECTS_SOMETHING_MESSAGE = (
    "spec: set spec.namespaceSelector (labels; {} selects every namespace) or spec.namespaces (names), "
    "or both: a policy that selects no namespace would enforce nothing"
)

FILE_BUCKET_MESSAGE = "bucket: file:// URIs have no bucket; leave it unset and put the path in prefix"
STORAGE_CLASS_MESSAGE = "storageClasses: only pvc rules have a storage class; remove it or set scheme: pvc"


class Enforcement(StrEnum):
    ENFORCE = "Enforce"
    AUDIT = "Audit"


class SelectorOperator(StrEnum):
    IN = "In"
    NOT_IN = "NotIn"
    EXISTS = "Exists"
    DOES_NOT_EXIST = "DoesNotExist"


class SelectorRequirement(CamelModel):
    key: str = Field(min_length=1, description="Namespace label key.")
    operator: SelectorOperator = Field(description="In, NotIn, Exists or DoesNotExist.")
    values: list[str] = Field(default_factory=list, description="Values for In and NotIn.")


class LabelSelector(CamelModel):
    """metav1.LabelSelector: matchLabels and matchExpressions are ANDed; empty selects all."""

    match_labels: dict[str, str] = Field(default_factory=dict, description="Labels the namespace must have.")
    match_expressions: list[SelectorRequirement] = Field(
        default_factory=list, description="Set-based requirements on the namespace's labels."
    )


class LocationRule(CamelModel):
    """One allowed place, compared with a URI after normalisation (lowercase scheme and bucket,
    percent-decoded, no `.`/`..`/empty segments): same scheme, bucket matching the glob, path
    starting with `prefix` segment by segment (`data/eu` allows `data/eu/x`, not `data/eu2`)."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {"rule": "self.scheme != 'file' || !has(self.bucket)", "message": FILE_BUCKET_MESSAGE},
                {"rule": "self.scheme == 'pvc' || !has(self.storageClasses)", "message": STORAGE_CLASS_MESSAGE},
            ]
        }
    )

    scheme: Literal["s3", "gs", "file", "pvc"] = Field(description="URI scheme: s3, gs, file or pvc.")
    bucket: str | None = Field(
        default=None,
        min_length=1,
        description="Glob (*, ?) on the bucket (s3, gs) or claim name (pvc); unset allows any. Not for file.",
    )
    prefix: str = Field(
        default="",
        description="Path prefix, compared whole segment by whole segment; each segment may be a glob. "
        "Empty allows the whole bucket.",
    )
    storage_classes: list[str] | None = Field(
        default=None,
        description="pvc only: the claim's storageClassName must be one of these; unset allows any class.",
    )

    @model_validator(mode="after")
    def _fits_scheme(self) -> LocationRule:
        if self.scheme == "file" and self.bucket is not None:
            raise ValueError(FILE_BUCKET_MESSAGE)
        if self.scheme != "pvc" and self.storage_classes is not None:
            raise ValueError(STORAGE_CLASS_MESSAGE)
        return self

    def describe(self) -> str:
        """The rule as users write URIs, for refusal messages."""
        host = self.bucket or ("" if self.scheme == "file" else "*")
        text = f"{self.scheme}://{host}/{self.prefix.strip('/')}"
        text = text if text.endswith("/") else text + "/"
        text += "**"
        if self.storage_classes is not None:
            text += f" (storage classes: {', '.join(self.storage_classes) or 'none'})"
        return text


class NamespaceScope(CamelModel):
    """Which namespaces a cluster-scoped policy applies to; shared by every kubetrain policy kind
    (DataResidencyPolicy, BudgetPolicy) so they select namespaces the same way."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "has(self.namespaceSelector) || (has(self.namespaces) && size(self.namespaces) > 0)",
                    "message": SELECTS_SOMETHING_MESSAGE,
                }
            ]
        }
    )

    namespace_selector: LabelSelector | None = Field(
        default=None, description="Namespaces selected by label ({} selects every namespace)."
    )
    namespaces: list[str] = Field(default_factory=list, description="Namespaces selected by name.")

    @model_validator(mode="after")
    def _selects_something(self) -> NamespaceScope:
        if self.namespace_selector is None and not self.namespaces:
            raise ValueError(SELECTS_SOMETHING_MESSAGE)
        return self


class ValueSource(StrEnum):
    """env[].valueFrom kinds whose values the operator cannot read. fieldRef and resourceFieldRef
    are not listed: their values are the pod's own metadata (judged) or cluster-assigned."""

    SECRET_KEY_REF = "secretKeyRef"
    CONFIG_MAP_KEY_REF = "configMapKeyRef"
    FILE_KEY_REF = "fileKeyRef"


DEFAULT_VALUE_SOURCES = [ValueSource.SECRET_KEY_REF]


class DatasetField(StrEnum):
    """spec.dataset fields a policy may require (requiredDatasetFields)."""

    LICENSE = "license"
    CONSENT_BASIS = "consentBasis"


class DataResidencyPolicySpec(NamespaceScope):
    enforcement: Enforcement = Field(
        default=Enforcement.ENFORCE,
        description="Enforce refuses and stops violating jobs; Audit lets them run and records the violation.",
    )
    allowed_regions: list[str] | None = Field(
        default=None,
        description="Regions (node label topology.kubernetes.io/region) the workers may run in; every worker pod "
        "gets a required node affinity to them.",
    )
    allowed_node_pools: list[str] | None = Field(
        default=None, description="Node pools (spec.nodePool) jobs may use; when set, spec.nodePool is required."
    )
    allowed_data: list[LocationRule] | None = Field(
        default=None, description="Where jobs may read: spec.dataset.uri and spec.task.finetune.checkpointUri."
    )
    allowed_outputs: list[LocationRule] | None = Field(
        default=None, description="Where jobs may write: spec.output.uri (model, checkpoints, card)."
    )
    required_dataset_fields: list[DatasetField] | None = Field(
        default=None,
        description="spec.dataset fields every job must set: license and/or consentBasis (a job that names no "
        "spec.dataset is refused too), so each model's provenance and card say under which terms its data was used.",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    allowed_value_sources: list[ValueSource] = Field(
        default_factory=lambda: list(DEFAULT_VALUE_SOURCES),
        description="Under data or output rules, the env[].valueFrom kinds whose values the operator cannot read "
        "that containers may still use (a variable that refers to one with $(VAR) is refused whatever this "
        "says). Default: secretKeyRef, for credentials; configMapKeyRef and fileKeyRef could hold any location.",
    )


class PolicyMetadata(CamelModel):
    model_config = ConfigDict(extra="ignore")

    name: str = Field(min_length=1, description="Name of the policy; refusals name it.")
    creation_timestamp: datetime | None = Field(default=None, description="When the policy was created.")


class DataResidencyPolicy(CamelModel):
    model_config = ConfigDict(extra="ignore")
    api_info: ClassVar[ApiInfo] = ApiInfo(
        kind=POLICY_KIND, plural="dataresidencypolicies", singular="dataresidencypolicy", short_names=("drp",)
    )

    api_version: Literal["kubetrain.io/v1alpha1"] = Field(default=API_VERSION, description="API version.")
    kind: Literal["DataResidencyPolicy"] = Field(default=POLICY_KIND, description="DataResidencyPolicy.")
    metadata: PolicyMetadata = Field(description="Standard object metadata.")
    spec: DataResidencyPolicySpec = Field(description="Which namespaces, and what their jobs may use.")
