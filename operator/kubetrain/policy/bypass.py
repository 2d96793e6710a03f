"""The side doors around a policy: pod-template fields that move pods off the policy's nodes, and
environment, arguments and volumes that point the trainer at data the policy does not allow.

A user's spec.podTemplate and env are escape hatches by design; under a policy, each of these
doors is refused outright rather than neutralised, so the user learns about it at admission.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from kubetrain.api.contract import is_reserved_env_name
from kubetrain.api.podspec import template_containers as containers
from kubetrain.api.nodepools import POOL_LABEL, REGION_LABEL
from kubetrain.api.spec import TrainingJobSpec
from kubetrain.policy.schemes import STORAGE_PROTOCOLS

# Variables storage clients read to redirect requests elsewhere (another endpoint, region,
# profile, proxy, metadata server or API domain) or to read their configuration from another
# place (HOME and XDG_CONFIG_HOME move ~/.aws, ~/.boto, ~/.config/gcloud and ~/.config/fsspec):
# with them a permitted URI can be served from anywhere.
_REDIRECT_WORDS = ("ENDPOINT", "PROXY", "EMULATOR_HOST", "PROFILE", "METADATA_HOST", "METADATA_IP",
                   "UNIVERSE_DOMAIN")
_REDIRECT_NAMES = frozenset(
    {"AWS_REGION", "AWS_DEFAULT_REGION", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_DATA_PATH",
     "HOME", "XDG_CONFIG_HOME"}
)
_REDIRECT_PREFIXES = ("FSSPEC_", "CLOUDSDK_", "BOTO_")
# Anything shaped like a URI inside a value or an argument, whatever its case or surroundings;
# fsspec also reads `proto::path` (and chains such as `simplecache::s3://...`).
_URI_LIKE = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*)(?:://|::)[^\s,;\"'`]*")
# Where storage clients read configuration that can redirect them (boto3 ~/.aws, boto ~/.boto
# and /etc/boto.cfg, gcloud and fsspec under ~/.config, s3cmd ~/.s3cfg), and home directories,
# which hold them all.
CONFIG_SEGMENTS = frozenset({".aws", ".boto", "boto.cfg", ".s3cfg", ".config", ".gsutil"})
_HOME_DIR = re.compile(r"^/(root|home|home/[^/]+)/?$")
SAFE_VOLUME_KINDS = frozenset({"name", "emptyDir", "configMap", "secret", "projected", "downwardAPI"})


def redirects_storage(name: str) -> bool:
    upper = name.upper()
    return (
        upper in _REDIRECT_NAMES
        or upper.startswith(_REDIRECT_PREFIXES)
        or any(word in upper for word in _REDIRECT_WORDS)
        or is_reserved_env_name(upper)
    )


def env_entries(spec: TrainingJobSpec) -> Iterator[tuple[str, str, str | None]]:
    """(path, name, literal value or None) of every variable the user sets anywhere."""
    for index, var in enumerate(spec.env):
        yield f"spec.env[{index}]", var.name, var.value
    for path, container in containers(spec.pod_template.spec):
        env = container.get("env")
        for index, var in enumerate(env if isinstance(env, list) else []):
            if isinstance(var, dict):
                value = var.get("value")
                yield f"{path}.env[{index}]", str(var.get("name", "")), value if isinstance(value, str) else None


def embedded_uris(spec: TrainingJobSpec) -> Iterator[tuple[str, str]]:
    """(path, URI) of every storage URI in env values, commands, arguments, Ray flags and pod
    annotations (a downward-API volume or fieldRef hands those to the container) as written;
    policy.expansion judges what the containers receive after expansion."""
    texts: list[tuple[str, str]] = [(path, value) for path, _, value in env_entries(spec) if value]
    texts += [(f"spec.command[{i}]", arg) for i, arg in enumerate(spec.command or [])]
    texts += [(f"spec.args[{i}]", arg) for i, arg in enumerate(spec.args or [])]
    texts += [(f"spec.ray.rayStartParams[{k}]", v) for k, v in spec.ray.ray_start_params.items()]
    texts += [(f"spec.podTemplate.metadata.annotations[{k}]", v) for k, v in spec.pod_template.metadata.annotations.items()]
    for path, container in containers(spec.pod_template.spec):
        for key in ("command", "args"):
            values = container.get(key)
            texts += [(f"{path}.{key}[{i}]", str(v)) for i, v in enumerate(values if isinstance(values, list) else [])]
    for path, text in texts:
        for uri in storage_uris(text):
            yield path, uri


def storage_uris(text: str) -> Iterator[str]:
    """The URIs in `text` whose scheme the trainer's storage layer opens (policy.schemes)."""
    for match in _URI_LIKE.finditer(text):
        if match.group(1).lower() in STORAGE_PROTOCOLS:
            yield match.group(0)


def env_from(spec: TrainingJobSpec) -> Iterator[str]:
    """Paths of envFrom blocks: they import variables the admission cannot see."""
    for path, container in containers(spec.pod_template.spec):
        if container.get("envFrom"):
            yield f"{path}.envFrom"


def config_mounts(spec: TrainingJobSpec) -> Iterator[tuple[str, str]]:
    """(path, file path) of mounts and volume items that place files where storage clients read
    their configuration, or that cover a home directory."""
    for path, container in containers(spec.pod_template.spec):
        mounts = container.get("volumeMounts")
        for index, mount in enumerate(mounts if isinstance(mounts, list) else []):
            if not isinstance(mount, dict):
                continue
            target = str(mount.get("mountPath", ""))  # subPath picks what of the volume appears there
            if _HOME_DIR.match(target) or CONFIG_SEGMENTS & set(target.split("/")):
                yield f"{path}.volumeMounts[{index}].mountPath", target
    for index, volume in enumerate(_volumes(spec)):
        for kind in ("configMap", "secret"):
            yield from _config_items(f"spec.podTemplate.spec.volumes[{index}].{kind}", volume.get(kind))
        projected = volume.get("projected")
        sources = projected.get("sources") if isinstance(projected, dict) else None
        for s, source in enumerate(sources if isinstance(sources, list) else []):
            for kind in ("configMap", "secret"):
                if isinstance(source, dict):
                    yield from _config_items(
                        f"spec.podTemplate.spec.volumes[{index}].projected.sources[{s}].{kind}", source.get(kind)
                    )


def _config_items(path: str, source: Any) -> Iterator[tuple[str, str]]:
    items = source.get("items") if isinstance(source, dict) else None
    for index, item in enumerate(items if isinstance(items, list) else []):
        file_path = str(item.get("path", "")) if isinstance(item, dict) else ""
        if CONFIG_SEGMENTS & set(file_path.split("/")):
            yield f"{path}.items[{index}].path", file_path


def pvc_volumes(spec: TrainingJobSpec) -> Iterator[tuple[str, str]]:
    """(path, claim name) of the template's persistentVolumeClaim volumes."""
    for index, volume in enumerate(_volumes(spec)):
        claim = volume.get("persistentVolumeClaim")
        if isinstance(claim, dict):
            yield f"spec.podTemplate.spec.volumes[{index}]", str(claim.get("claimName", ""))


def foreign_volumes(spec: TrainingJobSpec) -> Iterator[tuple[str, str]]:
    """(path, kind) of volumes that reach storage the policy cannot place (nfs, csi, hostPath, ...)."""
    for index, volume in enumerate(_volumes(spec)):
        for kind in sorted(set(volume) - SAFE_VOLUME_KINDS - {"persistentVolumeClaim"}):
            yield f"spec.podTemplate.spec.volumes[{index}]", kind


def _volumes(spec: TrainingJobSpec) -> list[dict[str, Any]]:
    volumes = spec.pod_template.spec.get("volumes")
    return [v for v in volumes if isinstance(v, dict)] if isinstance(volumes, list) else []


def scheduling_overrides(spec: TrainingJobSpec) -> Iterator[tuple[str, str]]:
    """(path, value) of template fields that place pods without the scheduler's node affinity."""
    pod = spec.pod_template.spec
    if pod.get("nodeName"):
        yield "spec.podTemplate.spec.nodeName", str(pod["nodeName"])
    scheduler = pod.get("schedulerName")
    if scheduler and scheduler != "default-scheduler":
        yield "spec.podTemplate.spec.schedulerName", str(scheduler)


def node_label_choices(spec: TrainingJobSpec) -> Iterator[tuple[str, str, str, list[str]]]:
    """(path, label, operator, values) of every user nodeSelector entry and required node-affinity
    expression on the region or pool label."""
    pod = spec.pod_template.spec
    selector = pod.get("nodeSelector")
    for key, value in (selector.items() if isinstance(selector, dict) else []):
        if key in (REGION_LABEL, POOL_LABEL):
            yield f"spec.podTemplate.spec.nodeSelector[{key}]", key, "In", [str(value)]
    affinity = pod.get("affinity")
    node_affinity = affinity.get("nodeAffinity") if isinstance(affinity, dict) else None
    required = node_affinity.get("requiredDuringSchedulingIgnoredDuringExecution") if isinstance(
        node_affinity, dict
    ) else None
    terms = required.get("nodeSelectorTerms") if isinstance(required, dict) else None
    for t, term in enumerate(terms if isinstance(terms, list) else []):
        expressions = term.get("matchExpressions") if isinstance(term, dict) else None
        for e, expr in enumerate(expressions if isinstance(expressions, list) else []):
            if isinstance(expr, dict) and expr.get("key") in (REGION_LABEL, POOL_LABEL):
                values = expr.get("values")
                path = "spec.podTemplate.spec.affinity.nodeAffinity.required"
                yield (
                    f"{path}.nodeSelectorTerms[{t}].matchExpressions[{e}]",
                    str(expr["key"]),
                    str(expr.get("operator", "")),
                    [str(v) for v in values] if isinstance(values, list) else [],
                )
