"""The merge patch that writes a planned status without touching the trainer's fields."""

from __future__ import annotations

from typing import Any

from kubetrain.api.status import TrainingJobStatus

TRAINER_FIELDS = ("progress", "metrics", "lastCheckpoint")


def status_patch(previous: dict[str, Any] | None, status: TrainingJobStatus) -> dict[str, Any]:
    """Only the top-level fields that changed, None where a field is to be removed, and empty when
    nothing changed (so an idle reconcile writes nothing and triggers no watch event). `metrics`
    is written only to fill it from the termination-message fallback: the trainer owns it."""
    # Parsed to normalise timestamps, but only what is really stored counts: a default the
    # server never stored (restarts: 0) must still be written once.
    old = _stored(
        TrainingJobStatus.model_validate(previous or {}).model_dump(
            mode="json", by_alias=True, exclude_none=True, exclude_unset=True
        )
    )
    new = _stored(status.to_k8s())
    patch: dict[str, Any] = {k: v for k, v in new.items() if k not in TRAINER_FIELDS and old.get(k) != v}
    patch.update({k: None for k in old if k not in new and k not in TRAINER_FIELDS})
    if new.get("metrics") and not old.get("metrics"):
        patch["metrics"] = new["metrics"]
    return patch


def _stored(status: dict[str, Any]) -> dict[str, Any]:
    """An empty list or map reads back the same as an absent one."""
    return {key: value for key, value in status.items() if value not in ([], {})}
