"""A variable set twice reaches a container once (the kubelet keeps the last; the operator's merge
keeps spec.env over the template's trainer container), so every duplicate is refused, naming it:
by the model (hence the webhook and the reconcile's InvalidSpec) and by the CRD's CEL rule."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from kubetrain.api import TrainingJob
from kubetrain.api.crd import generate_crd
from kubetrain.policy.admission import spec_refusal
from tests.builders import JobBuilder


def _container(name: str, *env: str) -> dict[str, Any]:
    return {"name": name, "env": [{"name": n, "value": "x"} for n in env]}


def _template(*containers: dict[str, Any], key: str = "containers") -> dict[str, Any]:
    return {"podTemplate": {"spec": {key: list(containers)}}}


DUPLICATES: list[tuple[str, dict[str, Any], str]] = [
    ("spec-env", {"env": [{"name": "A", "value": "1"}, {"name": "A", "value": "2"}]}, "spec.env[1].name: A"),
    ("spec-env-third", {"env": [{"name": n, "value": "1"} for n in ("A", "B", "B")]}, "spec.env[2].name: B"),
    ("template-container", _template(_container("sidecar", "A", "A")),
     "spec.podTemplate.spec.containers[0].env[1].name: A"),
    ("template-init-container", _template(_container("init", "B", "C", "B"), key="initContainers"),
     "spec.podTemplate.spec.initContainers[0].env[2].name: B"),
    ("spec-env-and-trainer-template", {"env": [{"name": "A", "value": "1"}], **_template(_container("trainer", "A"))},
     "spec.podTemplate.spec.containers[0].env[0].name: A is also set at spec.env[0].name"),
]


@pytest.mark.parametrize(("case", "overrides", "named"), DUPLICATES, ids=[c[0] for c in DUPLICATES])
def test_a_variable_set_twice_is_refused_naming_it(case: str, overrides: dict[str, Any], named: str) -> None:
    manifest = JobBuilder.eu("dup", "team").merge(**overrides).manifest()
    with pytest.raises(ValidationError) as refused:
        TrainingJob.model_validate(manifest)
    assert named in str(refused.value)
    refusal = spec_refusal(manifest)
    assert refusal is not None and refusal.startswith("TrainingJob team/dup is invalid: ") and named in refusal
    assert "set it once" in refusal


def test_the_same_name_in_different_containers_is_admitted() -> None:
    overrides = {"env": [{"name": "A", "value": "1"}], **_template(_container("sidecar", "A"), _container("x", "A"))}
    assert spec_refusal(JobBuilder.eu("ok", "team").merge(**overrides).manifest()) is None


def test_the_crd_keys_spec_env_by_name_so_the_api_server_refuses_duplicates() -> None:
    env = generate_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["env"]
    assert env["x-kubernetes-list-type"] == "map" and env["x-kubernetes-list-map-keys"] == ["name"]
    assert "name" in env["items"]["required"]
