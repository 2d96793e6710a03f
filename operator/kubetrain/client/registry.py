"""Which ModelVersion a reference names, for `kubetrain predict` and notebooks: `MODEL` is the
Model's promoted version (status.promotedVersion: its spec pin, else the latest), so a rollback
of the pin changes what is predicted and served; `MODEL:VERSION` names one (`3`, `v3` or
`fraud-v3`)."""

from __future__ import annotations

import re

from kubetrain.api.registry import Model, ModelVersion, version_name

_NUMBER = re.compile(r"v?([0-9]+)")


class NotServable(RuntimeError):
    """The reference names no version, or a version without a model card to load."""


def parse_reference(reference: str) -> tuple[str, str | None]:
    """(model, ModelVersion name or None for the promoted one)."""
    model, _, version = reference.partition(":")
    if not model:
        raise NotServable(f"{reference!r}: expected MODEL or MODEL:VERSION (e.g. fraud, fraud:3, fraud:fraud-v3)")
    if not version:
        return model, None
    number = _NUMBER.fullmatch(version)
    return model, version_name(model, int(number.group(1))) if number else version


def promoted_name(model: Model) -> str:
    if model.status.promoted_version is None:
        raise NotServable(f"Model {model.metadata.name} has no promoted version yet (no passing run recorded)")
    return model.status.promoted_version


def card_uri(version: ModelVersion) -> str:
    """The model card the trainer wrote beside the weights: what the predictor loads."""
    uri = version.spec.provenance.model_card_uri
    if uri is None:
        raise NotServable(
            f"ModelVersion {version.metadata.name} records no model card (provenance.modelCardUri): its run "
            "exported no card the predictor can load"
        )
    return uri
