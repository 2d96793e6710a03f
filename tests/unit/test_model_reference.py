"""`kubetrain predict MODEL[:VERSION]`: which ModelVersion a reference names, and the refusals
that say what to fix instead of a traceback."""

from __future__ import annotations

from typing import Any

import pytest

from kubetrain.api.registry import Model, ModelVersion
from kubetrain.client import NotServable, card_uri
from kubetrain.client.registry import parse_reference, promoted_name


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        ("fraud", ("fraud", None)),
        ("fraud:3", ("fraud", "fraud-v3")),
        ("fraud:v3", ("fraud", "fraud-v3")),
        ("fraud:fraud-v3", ("fraud", "fraud-v3")),
    ],
)
def test_a_reference_names_the_promoted_or_one_version(reference: str, expected: tuple[str, str | None]) -> None:
    assert parse_reference(reference) == expected


def test_a_reference_without_a_model_is_refused() -> None:
    with pytest.raises(NotServable, match="expected MODEL or MODEL:VERSION"):
        parse_reference(":3")


def test_the_promoted_version_is_the_models_status() -> None:
    pinned = Model.model_validate({"metadata": {"name": "fraud"}, "spec": {"promotedVersion": "fraud-v1"},
                                   "status": {"promotedVersion": "fraud-v1", "latestVersion": "fraud-v2"}})
    assert promoted_name(pinned) == "fraud-v1"
    with pytest.raises(NotServable, match="no promoted version yet"):
        promoted_name(Model.model_validate({"metadata": {"name": "fraud"}}))


def version(**provenance: Any) -> ModelVersion:
    return ModelVersion.model_validate({
        "metadata": {"name": "fraud-v2"},
        "spec": {"model": "fraud", "version": 2, "sourceJob": {"name": "j", "uid": "u"},
                 "provenance": {"trainerImage": "img", **provenance}},
    })


def test_the_predictor_loads_the_versions_model_card() -> None:
    assert card_uri(version(modelCardUri="s3://b/out/model-card.json")) == "s3://b/out/model-card.json"
    with pytest.raises(NotServable, match="fraud-v2 records no model card"):
        card_uri(version())
