"""Node pool -> selector, tolerations, region affinity and resources; refusals with the fix."""

from __future__ import annotations

from typing import Any

import pytest

from kubetrain.api import TrainingJobSpec, default_catalogue
from kubetrain.render.errors import InvalidSpec
from kubetrain.render.placement import place, placement_errors

CATALOGUE = default_catalogue()


def spec(pool: str | None, gpus: int = 0, **resources: Any) -> TrainingJobSpec:
    return TrainingJobSpec.model_validate(
        {
            "task": {"type": "tabular-classification"},
            "dataset": {"uri": "file:///d"},
            "output": {"uri": "file:///o"},
            "nodePool": pool,
            "resources": {"gpus": gpus, **resources},
        }
    )


def region_of(affinity: dict[str, Any] | None) -> list[str] | None:
    if affinity is None:
        return None
    terms = affinity["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    [term] = terms
    [expression] = term["matchExpressions"]
    assert expression["key"] == "topology.kubernetes.io/region" and expression["operator"] == "In"
    return expression["values"]


@pytest.mark.parametrize(
    ("pool", "gpus", "taint_key", "region"),
    [
        ("a100-eu", 8, "nvidia.com/gpu", "eu-west-1"),
        ("h100-us", 2, "nvidia.com/gpu", "us-east-1"),
        ("cpu", 0, None, None),
        ("local", 0, "kubetrain.io/local", "eu-west-1"),
    ],
)
def test_each_pool(pool: str, gpus: int, taint_key: str | None, region: str) -> None:
    placement = place(spec(pool, gpus), CATALOGUE)
    assert placement.node_selector == {"kubetrain.io/node-pool": pool}
    assert [t["key"] for t in placement.tolerations] == ([taint_key] if taint_key else [])
    assert region_of(placement.affinity) == ([region] if region else None)
    if gpus:
        assert placement.resources["requests"]["nvidia.com/gpu"] == str(gpus)
        assert placement.resources["limits"]["nvidia.com/gpu"] == str(gpus)
    else:
        assert "nvidia.com/gpu" not in placement.resources.get("requests", {})


def test_no_pool_means_no_placement_constraints() -> None:
    placement = place(spec(None), CATALOGUE)
    assert placement.node_selector == {} and placement.tolerations == [] and placement.affinity is None
    assert placement.resources == {}


def test_cpu_is_requested_and_memory_limited_at_its_request() -> None:
    placement = place(spec("cpu", cpu="4", memory="16Gi"), CATALOGUE)
    assert placement.resources == {"requests": {"cpu": "4", "memory": "16Gi"}, "limits": {"memory": "16Gi"}}


def test_pool_without_region_gets_no_affinity() -> None:
    catalogue = CATALOGUE.model_copy(deep=True)
    catalogue.pools["a100-eu"].region = None
    assert place(spec("a100-eu"), catalogue).affinity is None


@pytest.mark.parametrize(
    ("pool", "gpus", "field", "fragments"),
    [
        (
            "does-not-exist",
            0,
            "spec.nodePool",
            ["does-not-exist", "a100-eu, cpu, h100-us, local", "ask the cluster admin"],
        ),
        ("a100-eu", 9, "spec.resources.gpus", ["9", "at most 8", "raise spec.workers"]),
        ("cpu", 1, "spec.resources.gpus", ["no GPUs", "a100-eu, h100-us"]),
        ("local", 2, "spec.resources.gpus", ["no GPUs"]),
    ],
)
def test_refusals_name_field_value_allowed_and_fix(pool: str, gpus: int, field: str, fragments: list[str]) -> None:
    [error] = placement_errors(spec(pool, gpus), CATALOGUE)
    assert error.field == field and error.value in (pool, gpus)
    message = str(error)
    assert message.startswith(field) and "allowed:" in message and "fix:" in message
    for fragment in fragments:
        assert fragment in message
    with pytest.raises(InvalidSpec):
        place(spec(pool, gpus), CATALOGUE)
