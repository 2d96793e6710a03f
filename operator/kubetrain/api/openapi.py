"""pydantic JSON Schema -> the structural OpenAPI v3 schema the API server accepts in a CRD.

The API server refuses $ref, nullable unions, `title`, null defaults, `additionalProperties: false`
and draft-2020 numeric exclusive bounds, so each is rewritten here; everything else (enum,
pattern, bounds, defaults, x-kubernetes-* extensions) passes through unchanged.
"""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]

_DROPPED = {"title", "$defs"}
_REF_PREFIX = "#/$defs/"


def structural(schema: Schema) -> Schema:
    """Inlines every definition of `schema` and rewrites it into a structural schema."""
    return _convert(schema, schema.get("$defs", {}))


def _convert(node: Schema, defs: dict[str, Schema]) -> Schema:
    node = _resolve(node, defs)
    out: Schema = {}
    for key, value in node.items():
        if key in _DROPPED or (key == "default" and value is None):
            continue
        if key == "properties":
            out[key] = {name: _convert(prop, defs) for name, prop in value.items()}
        elif key == "items":
            out[key] = _convert(value, defs)
        elif key == "additionalProperties":
            out.update(_additional_properties(value, defs))
        elif key in ("exclusiveMinimum", "exclusiveMaximum") and not isinstance(value, bool):
            # OpenAPI v3.0 spells `x > 0` as minimum: 0 plus exclusiveMinimum: true.
            out["minimum" if key == "exclusiveMinimum" else "maximum"] = value
            out[key] = True
        else:
            out[key] = value
    return out


def _resolve(node: Schema, defs: dict[str, Schema]) -> Schema:
    """Replaces $ref by its target and `X | None` by X; keys next to them (a field's description
    or default) win over the target's, because they are the more specific ones."""
    node = dict(node)
    if "$ref" in node:
        target = defs[node.pop("$ref").removeprefix(_REF_PREFIX)]
        node = {**_resolve(target, defs), **node}
    variants = node.get("anyOf")
    if variants is not None and not node.get("x-kubernetes-int-or-string"):
        non_null = [v for v in variants if v.get("type") != "null"]
        if len(non_null) != 1:
            raise ValueError(f"a CRD schema cannot express the union {variants}")
        del node["anyOf"]
        node = {**_resolve(non_null[0], defs), **node}
    return node


def _additional_properties(value: bool | Schema, defs: dict[str, Schema]) -> Schema:
    if value is False:
        return {}
    if value is True or value == {}:
        return {"x-kubernetes-preserve-unknown-fields": True}
    return {"additionalProperties": _convert(value, defs)}
