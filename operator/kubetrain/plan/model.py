"""A Model's versions -> its status (pure): the promoted version is the user's pin when it names
an existing version, else the latest version. A pin naming no version keeps what was promoted
(a typo must not change what is served) and says so in the Resolved condition."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from kubetrain.api.events import EventType
from kubetrain.api.registry import Model, ModelStatus, ModelVersion
from kubetrain.api.registry import ModelConditionType as MC
from kubetrain.api.registry import ModelReason as MR
from kubetrain.plan import conditions as cond
from kubetrain.plan.draft import Event


class ModelPlan(BaseModel):
    model_config = ConfigDict(frozen=True)

    status: ModelStatus
    events: list[Event] = Field(default_factory=list)


def resolve(model: Model, versions: list[ModelVersion], now: datetime) -> ModelPlan:
    ordered = sorted((v for v in versions if v.spec.model == model.metadata.name), key=lambda v: v.spec.version)
    by_name = {v.metadata.name: v for v in ordered}
    latest = ordered[-1].metadata.name if ordered else None
    pin, old = model.spec.promoted_version, model.status
    promoted: str | None
    if pin is not None and pin in by_name:
        promoted, how, message = pin, MR.PINNED, f"{pin} is promoted: pinned by spec.promotedVersion"
    elif pin is not None:
        promoted, how = old.promoted_version if old.promoted_version in by_name else None, MR.PIN_NOT_FOUND
        message = (
            f"spec.promotedVersion {pin} names no ModelVersion of this model (versions: "
            f"{', '.join(by_name) or 'none'}); {promoted or 'nothing'} stays promoted until the pin is fixed"
        )
    elif latest is not None:
        promoted, how, message = latest, MR.LATEST, f"{latest} is promoted: the latest version"
    else:
        promoted, how, message = None, MR.NO_VERSIONS, "no version has passed its gates yet"
    generation = model.metadata.generation
    conditions = cond.set_condition(
        old.conditions, MC.RESOLVED, how != MR.PIN_NOT_FOUND, how.value, message, now.replace(microsecond=0),
        generation,
    )
    status = ModelStatus(
        promoted_version=promoted,
        latest_version=latest,
        versions=len(ordered),
        promoted_metrics=by_name[promoted].spec.metrics if promoted else {},
        observed_generation=generation,
        conditions=conditions,
    )
    events = []
    if status.promoted_version != old.promoted_version and promoted is not None:
        events.append(Event(type=EventType.NORMAL, reason=MR.PROMOTED, message=message))
    elif how == MR.PIN_NOT_FOUND and cond.find(old.conditions, MC.RESOLVED) != cond.find(conditions, MC.RESOLVED):
        events.append(Event(type=EventType.WARNING, reason=how.value, message=message))
    return ModelPlan(status=status, events=events)
