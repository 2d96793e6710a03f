"""The chart's values schema describes a node pool exactly as the operator's model does, so a
catalogue the schema admits is one the operator can load."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from kubetrain.api.nodepools import NodePool, load_catalogue

CHART = Path(__file__).resolve().parents[2] / "charts" / "kubetrain"
FULL_VALUES = Path(__file__).resolve().parents[1] / "data" / "helm-values-full.yaml"


def test_schema_node_pool_fields_are_the_models_fields() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())["definitions"]["nodePool"]
    model = NodePool.model_json_schema(by_alias=True)
    assert set(schema["properties"]) == set(model["properties"])
    assert schema["required"] == model["required"]


def test_full_values_catalogue_loads() -> None:
    pools = yaml.safe_load(FULL_VALUES.read_text())["nodePools"]
    assert load_catalogue({"pools": pools}).names() == sorted(pools)
