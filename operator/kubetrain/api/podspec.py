"""Rules on `spec.podTemplate.spec` that its free-form schema cannot state: each returns the
problems as messages that name the field, so the TrainingJobSpec validator (and with it the
admission webhook and the reconcile's InvalidSpec) can refuse them.

Invoked from `kubetrain.api.spec.TrainingJobSpec`'s model validator.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

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
