"""Fetching what the promotion decision needs (the model line's Model and versions), for the reconcile."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from kubetrain.api.job import TrainingJob
from kubetrain.api.registry import SOURCE_JOB_UID_LABEL, Model, ModelVersion
from kubetrain.api.sweep import PROMOTION_ANNOTATION, PROMOTION_HELD, SWEEP_LABEL, SweepPhase, TrainingSweep
from kubetrain.controller.kube import Kube
from kubetrain.plan.promotion import PromotionFacts, RecordedVersion
from kubetrain.policy.promotion import Promoted

T = TypeVar("T", bound=BaseModel)


def fetch_promotion(kube: Kube, job: TrainingJob) -> PromotionFacts:
    """The line's Model and versions; a version of this very run is found by the job's uid label,
    so a run recorded before a lost status write is never recorded again."""
    assert job.spec.model is not None
    namespace, line = job.metadata.namespace, job.spec.model.name
    raw_model = kube.get_custom(Model.api_info, namespace, line)
    model = _parse(Model, raw_model) if raw_model is not None else None
    raw_versions = kube.list_model_versions(namespace, line)
    versions = {v.metadata.name: v for raw in raw_versions if (v := _parse(ModelVersion, raw)) is not None}
    mine = next(
        (v for raw in raw_versions
         if (raw["metadata"].get("labels") or {}).get(SOURCE_JOB_UID_LABEL) == job.metadata.uid
         and (v := versions.get(raw["metadata"]["name"])) is not None),
        None,
    )
    promoted = versions.get(model.status.promoted_version or "") if model is not None else None
    return PromotionFacts(
        model_exists=raw_model is not None,
        pinned=model.spec.promoted_version if model is not None else None,
        promoted=Promoted(name=promoted.metadata.name, metrics=promoted.spec.metrics) if promoted else None,
        recorded=RecordedVersion(name=mine.metadata.name, gates=mine.spec.gates) if mine else None,
        next_version=1 + max((v.spec.version for v in versions.values()), default=0),
        held=_held(kube, job),
    )


def _held(kube: Kube, job: TrainingJob) -> bool:
    """A promoteBest sweep's trial is held until its sweep has succeeded with it as the best (the
    sweep's status says so; the operator never writes a job's metadata or spec)."""
    meta = job.metadata
    if meta.annotations.get(PROMOTION_ANNOTATION) != PROMOTION_HELD:
        return False
    raw = kube.get_custom(TrainingSweep.api_info, meta.namespace, meta.labels.get(SWEEP_LABEL, ""))
    status = (raw or {}).get("status") or {}
    best = status.get("best") or {}
    return not (status.get("phase") == SweepPhase.SUCCEEDED and best.get("job") == meta.name)


def _parse(model: type[T], raw: dict[str, Any]) -> T | None:
    try:
        return model.model_validate(raw)
    except ValidationError:
        return None
