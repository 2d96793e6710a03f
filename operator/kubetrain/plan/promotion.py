"""After a successful run of a model line: judge its gates, record it as a ModelVersion, and say
in the Promoted condition whether it is the line's promoted version. Level-triggered like the
rest of the plan: the first reconcile records the version, the next one finds it (by the job's
uid) and settles the condition, so a lost write or an operator restart never records a run twice.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from kubetrain.api.contract import API_VERSION, MANAGED_BY, MANAGED_BY_LABEL
from kubetrain.api.events import EventType
from kubetrain.api.provenance import Provenance
from kubetrain.api.registry import (
    DATASET_DIGEST_LABEL,
    MODEL_KIND,
    MODEL_LABEL,
    MODEL_VERSION_KIND,
    SOURCE_JOB_LABEL,
    SOURCE_JOB_UID_LABEL,
    ModelVersionSpec,
    SourceJob,
    digest_label,
    version_name,
)
from kubetrain.api.status import ConditionType as C
from kubetrain.api.status import Reason as R
from kubetrain.plan import conditions as cond
from kubetrain.plan.draft import Draft, Event
from kubetrain.policy.promotion import Promoted, judge_gates

# The recorded version appears in the next reconcile; this is how soon it is looked for.
RECHECK_SECONDS = 1.0


class RecordedVersion(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    gates: list[str] = Field(default_factory=list)


class PromotionFacts(BaseModel):
    """The model line as the reconcile found it."""

    model_config = ConfigDict(frozen=True)

    model_exists: bool = False
    pinned: str | None = Field(default=None, description="Model.spec.promotedVersion.")
    promoted: Promoted | None = Field(default=None, description="Model.status.promotedVersion and its metrics.")
    recorded: RecordedVersion | None = Field(default=None, description="The ModelVersion of this very run, if any.")
    next_version: int = Field(default=1, ge=1, description="1 + the highest version number of the line.")
    held: bool = Field(
        default=False,
        description="A trial of a sweep with promoteBest that its sweep has not (yet) ended with as its best: "
        "not judged, and no Promoted condition; the sweep wakes its best trial when it ends.",
    )


def needs_promotion(draft: Draft) -> bool:
    """Only a succeeded run of a model line whose outcome is not settled yet."""
    return (
        draft.job.spec.model is not None
        and draft.is_true(C.SUCCEEDED)
        and cond.find(draft.conditions, C.PROMOTED) is None
    )


def apply_promotion(draft: Draft, facts: PromotionFacts, metrics: dict[str, float], provenance: Provenance) -> None:
    job, model = draft.job, draft.job.spec.model
    if model is None or not needs_promotion(draft):
        return
    if facts.recorded is not None:
        _settle(draft, model.name, facts)
        return
    if facts.held:
        return
    gates = job.spec.evaluation.gates if job.spec.evaluation else []
    verdict = judge_gates(gates, metrics, facts.promoted)
    if not verdict.ok:
        message = f"model {model.name} not promoted: gate failed: {'; '.join(verdict.failed)}"
        _condition(draft, False, R.GATE_FAILED, message, EventType.WARNING)
        return
    if not facts.model_exists:
        draft.create.append(_model(job.metadata.namespace, model.name))
    draft.create.append(_version(draft, model.name, facts.next_version, metrics, verdict.passed, provenance))
    draft.requeue_within(RECHECK_SECONDS)


def _settle(draft: Draft, model: str, facts: PromotionFacts) -> None:
    recorded = facts.recorded
    assert recorded is not None
    draft.model_version = recorded.name
    gates = f" ({'; '.join(recorded.gates)})" if recorded.gates else ""
    if facts.pinned is not None and facts.pinned != recorded.name:
        message = (
            f"recorded as ModelVersion {recorded.name}, which passed every gate{gates}; not promoted because "
            f"Model {model} pins spec.promotedVersion {facts.pinned} (remove the pin to follow the latest version)"
        )
        _condition(draft, False, R.VERSION_PINNED, message, EventType.NORMAL)
        return
    message = f"ModelVersion {recorded.name} passed every gate{gates} and is the promoted version of Model {model}"
    _condition(draft, True, R.PROMOTED, message, EventType.NORMAL)


def _condition(draft: Draft, status: bool, reason: str, message: str, kind: EventType) -> None:
    draft.set(C.PROMOTED, status, reason, message)
    draft.events.append(Event(type=kind, reason=reason, message=message))


def _labels(**extra: str) -> dict[str, str]:
    return {MANAGED_BY_LABEL: MANAGED_BY, **extra}


def _model(namespace: str, name: str) -> dict[str, Any]:
    """An empty Model, so the line exists to pin; its spec is the user's from then on."""
    return {
        "apiVersion": API_VERSION,
        "kind": MODEL_KIND,
        "metadata": {"name": name, "namespace": namespace, "labels": _labels()},
        "spec": {},
    }


def _version(
    draft: Draft, model: str, number: int, metrics: dict[str, float], gates: list[str], provenance: Provenance
) -> dict[str, Any]:
    """Not owned by the job (no ownerReference): the record outlives the run."""
    meta = draft.job.metadata
    labels = _labels(**{MODEL_LABEL: model, SOURCE_JOB_LABEL: meta.name, SOURCE_JOB_UID_LABEL: meta.uid})
    if provenance.dataset_digest:
        labels[DATASET_DIGEST_LABEL] = digest_label(provenance.dataset_digest)
    spec = ModelVersionSpec(
        model=model,
        version=number,
        source_job=SourceJob(name=meta.name, uid=meta.uid),
        metrics=metrics,
        gates=gates,
        provenance=provenance,
    )
    return {
        "apiVersion": API_VERSION,
        "kind": MODEL_VERSION_KIND,
        "metadata": {"name": version_name(model, number), "namespace": meta.namespace, "labels": labels},
        "spec": spec.to_k8s(),
    }
