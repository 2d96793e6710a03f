"""Rules on `spec.podTemplate` that its free-form schema cannot state: the shape of a core/v1
PodSpec, label syntax, variables set twice. Each returns the problems as messages that name the
field, so the models (and with them the admission webhook and the reconcile's InvalidSpec)
refuse them.

Invoked from `kubetrain.api.spec.TrainingJobSpec`'s model validator.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator
from typing import Any

import kubernetes.client.models

from kubetrain.api.contract import TRAINER_CONTAINER

TEMPLATE_PATH = "spec.podTemplate.spec"
CONTAINER_LISTS = ("initContainers", "containers", "ephemeralContainers")


def template_containers(pod_spec: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(path, container) of every container the user's template declares."""
    for key in CONTAINER_LISTS:
        items = pod_spec.get(key)
        for index, container in enumerate(items if isinstance(items, list) else []):
            if isinstance(container, dict):
                yield f"{TEMPLATE_PATH}.{key}[{index}]", container


def env_names(env: Any) -> Iterator[tuple[int, str]]:
    """(index, name) of a container's env list, whatever its shape."""
    for index, var in enumerate(env if isinstance(env, list) else []):
        if isinstance(var, dict) and isinstance(var.get("name"), str):
            yield index, var["name"]


def duplicate_env(pod_spec: dict[str, Any], spec_env: list[str]) -> list[tuple[str, str, str]]:
    """(path, name, first path) of every variable a container would get twice: twice in one
    template container, or in both spec.env and the template's `trainer` container (which the
    operator merges into one list)."""
    duplicates = []
    for path, container in template_containers(pod_spec):
        seen: dict[str, str] = {}
        if container.get("name") == TRAINER_CONTAINER:
            seen = {name: f"spec.env[{i}].name" for i, name in enumerate(spec_env)}
        for index, name in env_names(container.get("env")):
            here = f"{path}.env[{index}].name"
            if name in seen:
                duplicates.append((here, name, seen[name]))
            else:
                seen[name] = here
    return duplicates


# The Kubernetes client's models carry the core/v1 OpenAPI types: "V1PodSpec",
# "List[V1Container]", "Dict[str, str]", "str", "object", ...
_PRIMITIVES: dict[str, tuple[tuple[type, ...], str]] = {
    # Quantities (resources) are int-or-string in the API but "str" in the client's models.
    "str": ((str, int, float), "a string"),
    "int": ((int,), "an integer"),
    "float": ((int, float), "a number"),
    "bool": ((bool,), "a boolean"),
    "datetime": ((str,), "a timestamp string"),
    "bytes": ((str,), "a base64 string"),
}


def shape_errors(value: Any, type_name: str, path: str) -> list[str]:
    """Where `value` does not have the shape of the core/v1 type `type_name` (a field of the
    wrong type, a map where a list belongs, a field the type does not have). Formats and
    cross-field rules are the API server's: the admission webhook asks it with a dry-run."""
    if value is None or type_name == "object":
        return []
    if type_name.startswith("List["):
        if not isinstance(value, list):
            return [f"{path}: must be a list, not {_kind(value)}"]
        nulls = [f"{path}[{i}]: must not be null" for i, item in enumerate(value) if item is None]
        return nulls + [e for i, item in enumerate(value) for e in shape_errors(item, type_name[5:-1], f"{path}[{i}]")]
    if type_name.startswith("Dict[str, "):
        if not isinstance(value, dict):
            return [f"{path}: must be a map, not {_kind(value)}"]
        inner = type_name[len("Dict[str, "):-1]
        return [e for k, item in value.items() for e in shape_errors(item, inner, f"{path}[{k}]")]
    if type_name in _PRIMITIVES:
        allowed, what = _PRIMITIVES[type_name]
        if isinstance(value, bool) and bool not in allowed or not isinstance(value, allowed):
            return [f"{path}: must be {what}, not {_kind(value)}"]
        return []
    model = getattr(kubernetes.client.models, type_name)
    if not isinstance(value, dict):
        return [f"{path}: must be an object ({type_name.removeprefix('V1')}), not {_kind(value)}"]
    fields = {json: model.openapi_types[attr] for attr, json in model.attribute_map.items()}
    errors = []
    for key, item in value.items():
        if key not in fields:
            close = difflib.get_close_matches(key, list(fields), 1)
            hint = f"did you mean {close[0]}?" if close else f"see kubectl explain for {type_name.removeprefix('V1')}"
            errors.append(f"{path}.{key}: {type_name.removeprefix('V1')} has no such field; {hint}")
        else:
            errors += shape_errors(item, fields[key], f"{path}.{key}")
    return errors


def _kind(value: Any) -> str:
    names = {dict: "a map", list: "a list", str: "a string", bool: "a boolean", int: "a number", float: "a number"}
    return f"{names.get(type(value), type(value).__name__)} ({str(value)[:40]!r})"


_NAME = r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_LABEL_VALUE = re.compile(rf"^({_NAME})?$")
_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_KEY_NAME = re.compile(rf"^{_NAME}$")
KEY_RULE = "an optional DNS subdomain prefix and '/', then at most 63 letters, digits, '-', '_' or '.', " \
    "starting and ending with a letter or digit"


def key_errors(path: str, key: str) -> list[str]:
    """A label or annotation key as the API server checks it (IsQualifiedName)."""
    prefix, _, name = key.rpartition("/")
    if (prefix and (len(prefix) > 253 or not _SUBDOMAIN.match(prefix))) or len(name) > 63 or not _KEY_NAME.match(name):
        return [f"{path}: key {key!r} is not a valid key ({KEY_RULE})"]
    return []


def label_errors(path: str, labels: dict[str, str]) -> list[str]:
    errors = [e for key in labels for e in key_errors(f"{path}[{key}]", key)]
    for key, value in labels.items():
        if len(value) > 63 or not _LABEL_VALUE.match(value):
            errors.append(f"{path}[{key}]: value {value!r} is not a valid label value (at most 63 letters, digits, "
                          "'-', '_' or '.', starting and ending with a letter or digit, or empty)")
    return errors


def without_nulls(value: Any) -> Any:
    """A null field of a Kubernetes object means unset: dropped, so the merge never meets one."""
    if isinstance(value, dict):
        return {k: without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [without_nulls(v) for v in value]
    return value
