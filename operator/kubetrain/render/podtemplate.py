"""Merging the user's spec.podTemplate into an operator-rendered pod.

The user's template is the base and the operator's fields are laid over it, so users can add
anything a PodSpec allows (volumes, serviceAccountName, sidecars, volume mounts on the `trainer`
container) while the env contract, labels, owner references, placement and resources stay the
operator's. The operator's security contexts and its /dev/shm volume are defaults instead: a
field the user sets wins (the namespace's PodSecurity admission still judges the result).
"""

from __future__ import annotations

import copy
from typing import Any

from kubetrain.api.contract import is_reserved_env_name
from kubetrain.api.spec import PodTemplate

_REQUIRED = "requiredDuringSchedulingIgnoredDuringExecution"


def merge_pod(template: PodTemplate, pod: dict[str, Any]) -> dict[str, Any]:
    meta = pod["metadata"]
    merged_meta = {
        **meta,
        "labels": {**template.metadata.labels, **meta.get("labels", {})},
        "annotations": {**template.metadata.annotations, **meta.get("annotations", {})},
    }
    if not merged_meta["annotations"]:
        del merged_meta["annotations"]
    return {**pod, "metadata": merged_meta, "spec": merge_pod_spec(template.spec, pod["spec"])}


def merge_pod_spec(user: dict[str, Any], owned: dict[str, Any]) -> dict[str, Any]:
    spec = copy.deepcopy(user)
    for key, value in owned.items():
        if key == "containers":
            spec[key] = _merge_containers(user.get(key) or [], value)
        elif key == "nodeSelector":
            spec[key] = {**(user.get(key) or {}), **value}
        elif key == "tolerations":
            spec[key] = [t for t in user.get(key) or [] if t not in value] + value
        elif key == "affinity":
            spec[key] = _merge_affinity(user.get(key), value)
        elif key == "securityContext":
            spec[key] = {**value, **(user.get(key) or {})}
        elif key == "volumes":
            spec[key] = _by_name_user_first(user.get(key) or [], value)
        else:
            spec[key] = value
    if "volumes" in owned:
        # An operator volume whose mount the user replaced (their own /dev/shm) is left out.
        mounted = {m.get("name") for c in spec.get("containers") or [] for m in c.get("volumeMounts") or []}
        user_names = {v.get("name") for v in user.get("volumes") or []}
        spec["volumes"] = [v for v in spec["volumes"] if v.get("name") in user_names or v.get("name") in mounted]
        if not spec["volumes"]:
            del spec["volumes"]
    return spec


def _merge_containers(user: list[dict[str, Any]], owned: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Owned containers come first (the local node and tools read containers[0] as the trainer);
    a user container with the same name contributes the fields the operator leaves unset."""
    by_name = {c.get("name"): c for c in user}
    merged = [_merge_container(by_name.get(c["name"], {}), c) for c in owned]
    owned_names = {c["name"] for c in owned}
    return merged + [copy.deepcopy(c) for c in user if c.get("name") not in owned_names]


def _merge_container(user: dict[str, Any], owned: dict[str, Any]) -> dict[str, Any]:
    container = {**copy.deepcopy(user), **owned}
    names = {var["name"] for var in owned.get("env", [])}
    extra_env = [
        v for v in user.get("env") or [] if v.get("name") not in names and not is_reserved_env_name(v.get("name", ""))
    ]
    if extra_env or "env" in owned:
        container["env"] = owned.get("env", []) + copy.deepcopy(extra_env)
    user_resources = user.get("resources") or {}
    owned_resources = owned.get("resources") or {}
    resources = {
        kind: {**(user_resources.get(kind) or {}), **(owned_resources.get(kind) or {})}
        for kind in ("requests", "limits")
        if user_resources.get(kind) or owned_resources.get(kind)
    }
    if resources:
        container["resources"] = resources
    if "securityContext" in owned:
        container["securityContext"] = {**owned["securityContext"], **(user.get("securityContext") or {})}
    if "volumeMounts" in owned:
        user_mounts = copy.deepcopy(user.get("volumeMounts") or [])
        taken = {m.get("mountPath") for m in user_mounts}
        container["volumeMounts"] = [m for m in owned["volumeMounts"] if m["mountPath"] not in taken] + user_mounts
    if "ports" in user and "ports" in owned:
        owned_ports = {p.get("containerPort") for p in owned["ports"]}
        container["ports"] = owned["ports"] + [p for p in user["ports"] if p.get("containerPort") not in owned_ports]
    return container


def _by_name_user_first(user: list[dict[str, Any]], owned: list[dict[str, Any]]) -> list[dict[str, Any]]:
    names = {item.get("name") for item in user}
    return copy.deepcopy(user) + [item for item in owned if item["name"] not in names]


def _merge_affinity(user: dict[str, Any] | None, owned: dict[str, Any]) -> dict[str, Any]:
    """Required node-selector terms are ORed by the scheduler, so the operator's expressions are
    ANDed into every term the user wrote instead of being added as one more alternative."""
    affinity = copy.deepcopy(user or {})
    required = affinity.setdefault("nodeAffinity", {}).setdefault(_REQUIRED, {})
    owned_terms = owned["nodeAffinity"][_REQUIRED]["nodeSelectorTerms"]
    user_terms = required.get("nodeSelectorTerms") or []
    if not user_terms:
        required["nodeSelectorTerms"] = copy.deepcopy(owned_terms)
        return affinity
    expressions = [e for term in owned_terms for e in term.get("matchExpressions", [])]
    required["nodeSelectorTerms"] = [
        {**term, "matchExpressions": (term.get("matchExpressions") or []) + copy.deepcopy(expressions)}
        for term in user_terms
    ]
    return affinity
