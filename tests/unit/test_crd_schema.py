"""The generated CRD: committed copy up to date, schema structural, example accepted."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

from kubetrain.api.crd import generate_crd
from kubetrain.api.openapi import structural

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "pytorch-ddp.yaml"
Schema = dict[str, Any]


def root_schema() -> Schema:
    return generate_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def nodes(schema: Schema, path: str = "") -> Iterator[tuple[str, Schema]]:
    yield path, schema
    for name, prop in schema.get("properties", {}).items():
        yield from nodes(prop, f"{path}.{name}")
    if isinstance(schema.get("items"), dict):
        yield from nodes(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from nodes(schema["additionalProperties"], f"{path}{{}}")


def test_names_scope_and_subresources() -> None:
    spec = generate_crd()["spec"]
    assert spec["group"] == "kubetrain.io" and spec["scope"] == "Namespaced"
    assert spec["names"] == {
        "kind": "TrainingJob",
        "listKind": "TrainingJobList",
        "plural": "trainingjobs",
        "singular": "trainingjob",
        "shortNames": ["tj"],
        "categories": ["kubetrain"],
    }
    [version] = spec["versions"]
    assert version["name"] == "v1alpha1" and version["served"] and version["storage"]
    assert version["subresources"] == {"status": {}}
    columns = {c["name"]: c["jsonPath"] for c in version["additionalPrinterColumns"]}
    assert columns["Phase"] == ".status.phase" and columns["Runtime"] == ".spec.runtime"
    assert columns["Workers"] == ".status.workers" and columns["Accuracy"] == ".status.metrics.accuracy"
    assert columns["Age"] == ".metadata.creationTimestamp"


def test_schema_is_structural() -> None:
    forbidden = {"$ref", "$defs", "allOf", "oneOf", "not", "title", "const", "nullable"}
    for path, node in nodes(root_schema()):
        assert not forbidden & node.keys(), f"{path or '<root>'} has {forbidden & node.keys()}"
        if "anyOf" in node:
            assert node.get("x-kubernetes-int-or-string"), f"{path}: anyOf only for int-or-string"
            continue
        assert "type" in node, f"{path or '<root>'} has no type"
        assert node.get("default", 0) is not None, f"{path} has a null default"
        assert not ("properties" in node and "additionalProperties" in node), path
        for key in ("exclusiveMinimum", "exclusiveMaximum"):
            assert isinstance(node.get(key, True), bool), f"{path}: {key} must be a boolean in OpenAPI v3.0"


def test_every_property_has_a_description() -> None:
    undocumented = [
        f"{path}.{name}"
        for path, node in nodes(root_schema())
        for name, prop in node.get("properties", {}).items()
        if not prop.get("description") and f"{path}.{name}" != ".metadata"
    ]
    assert not undocumented


def test_free_form_fields_preserve_unknown_fields() -> None:
    spec = root_schema()["properties"]["spec"]["properties"]
    template_spec = spec["podTemplate"]["properties"]["spec"]
    assert template_spec["type"] == "object" and template_spec["x-kubernetes-preserve-unknown-fields"] is True
    status = root_schema()["properties"]["status"]["properties"]
    assert status["metrics"]["additionalProperties"] == {"type": "number"}
    conditions = status["conditions"]
    assert conditions["x-kubernetes-list-type"] == "map" and conditions["x-kubernetes-list-map-keys"] == ["type"]
    assert "type" in conditions["items"]["required"]


def test_cel_rules_name_the_field_and_the_fix() -> None:
    rules = [rule for _, node in nodes(root_schema()) for rule in node.get("x-kubernetes-validations", [])]
    assert len(rules) >= 4
    for rule in rules:
        assert rule["message"].split(" ")[0].startswith(("spec.", "metadata.")), rule["message"]


def test_structural_rewrites() -> None:
    schema = {
        "$defs": {"Inner": {"title": "Inner", "type": "object", "additionalProperties": False, "properties": {}}},
        "type": "object",
        "title": "Outer",
        "properties": {
            "maybe": {"anyOf": [{"$ref": "#/$defs/Inner"}, {"type": "null"}], "default": None, "description": "d"},
            "positive": {"type": "number", "exclusiveMinimum": 0},
            "free": {"type": "object", "additionalProperties": True},
        },
    }
    assert structural(schema) == {
        "type": "object",
        "properties": {
            "maybe": {"type": "object", "properties": {}, "description": "d"},
            "positive": {"type": "number", "minimum": 0, "exclusiveMinimum": True},
            "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
        },
    }
    with pytest.raises(ValueError, match="union"):
        structural({"anyOf": [{"type": "string"}, {"type": "integer"}]})


def conform(value: Any, schema: Schema, path: str) -> list[str]:
    """The subset of OpenAPI validation plus pruning the API server applies to our schema."""
    if schema.get("x-kubernetes-int-or-string"):
        return [] if isinstance(value, (int, str)) else [f"{path}: not int-or-string"]
    kinds = {"object": dict, "array": list, "string": str, "integer": int, "number": (int, float), "boolean": bool}
    if not isinstance(value, kinds[schema["type"]]):
        return [f"{path}: {value!r} is not {schema['type']}"]
    problems = []
    if "enum" in schema and value not in schema["enum"]:
        problems.append(f"{path}: {value!r} not in {schema['enum']}")
    if "minimum" in schema and value < schema["minimum"]:
        problems.append(f"{path}: below minimum")
    if isinstance(value, dict):
        problems += [f"{path}.{key}: required" for key in schema.get("required", []) if key not in value]
        for key, item in value.items():
            if key in schema.get("properties", {}):
                problems += conform(item, schema["properties"][key], f"{path}.{key}")
            elif isinstance(schema.get("additionalProperties"), dict):
                problems += conform(item, schema["additionalProperties"], f"{path}.{key}")
            elif not schema.get("x-kubernetes-preserve-unknown-fields"):
                problems.append(f"{path}.{key}: unknown field (the API server would prune it)")
    if isinstance(value, list):
        for index, item in enumerate(value):
            problems += conform(item, schema["items"], f"{path}[{index}]")
    return problems


def test_example_conforms_to_the_crd_schema() -> None:
    manifest = yaml.safe_load(EXAMPLE.read_text())
    assert manifest["apiVersion"] == "kubetrain.io/v1alpha1" and manifest["kind"] == "TrainingJob"
    manifest.pop("metadata")  # validated by the API server's own ObjectMeta rules
    assert conform(manifest, root_schema(), "") == []


def test_schema_conformance_check_catches_bad_manifests() -> None:
    manifest = yaml.safe_load(EXAMPLE.read_text())
    manifest["spec"].update(workers=0, runtime="tensorflow", typo=1)
    problems = conform(manifest, root_schema(), "")
    assert {".spec.workers: below minimum", ".spec.typo: unknown field (the API server would prune it)"} <= set(
        problems
    )
    assert any(p.startswith(".spec.runtime") for p in problems)
