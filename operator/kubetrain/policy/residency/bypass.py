"""The side doors around a policy: pod-template fields that move pods off the policy's nodes, and
environment, arguments and volumes that point the trainer at data the policy does not allow.

A user's spec.podTemplate and env are escape hatches by design; under a policy, each of these
doors is refused outright rather than neutralised, so the user learns about it at admission.
"""

from __future__ import annotations

import json
import posixpath
import re
import sys
import urllib.parse
from collections.abc import Iterator
from typing import Any

from kubetrain.api.contract import is_reserved_env_name
from kubetrain.api.nodepools import POOL_LABEL, REGION_LABEL
from kubetrain.api.podspec import template_containers as containers
from kubetrain.api.spec import TrainingJobSpec
from kubetrain.policy.residency.schemes import STORAGE_PROTOCOLS

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
# Words of variables that choose the certificates TLS clients trust (AWS_CA_BUNDLE, SSL_CERT_FILE,
# SSL_CERT_DIR, REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE, NODE_EXTRA_CA_CERTS, GIT_SSL_CAINFO, ...):
# with a redirected name they let a client accept another server as the store.
_TRUST_WORDS = frozenset({"CA", "CERT", "CERTS", "CAINFO", "CAPATH", "SSL", "TLS"})
# Every `://` and `::` (fsspec reads `proto::path` and chains such as `simplecache::s3://...`),
# overlapping, so one scheme or chain never hides the next; the URI runs to
# whitespace, a quote or a list separator.
_SEPARATOR = re.compile(r"(?=(://|::))")
_URI_END = re.compile(r"[\s,;\"'`]")
_LONGEST_PROTOCOL = max(len(p) for p in STORAGE_PROTOCOLS)
# JSON string escapes (and the \xNN, \UNNNNNNNN and octal \NNN of shells, printf and Python): a
# value may hold a JSON document, itself holding JSON in a string.
_ESCAPE = re.compile(r"\\(u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|x[0-9a-fA-F]{2}|[0-3][0-7]{2}|[\"\\/bfnrt])")
_SIMPLE_ESCAPES = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
# Layers of escapes and percent-encoding undone before scanning (each layer one round of both).
_DECODING_ROUNDS = 8
# Where storage clients read configuration that can redirect them (boto3 ~/.aws, boto ~/.boto
# and /etc/boto.cfg, gcloud and fsspec under ~/.config, s3cmd ~/.s3cfg, Python's certifi CA
# bundle), and home directories, which hold them all.
CONFIG_SEGMENTS = frozenset({".aws", ".boto", "boto.cfg", ".s3cfg", ".config", ".gsutil", "certifi"})
_HOME_DIR = re.compile(r"^/(root|home|home/[^/]+)$")
# System files that decide where names resolve and which certificates are trusted: a mount onto
# one of them, inside one, or onto a directory above one replaces it.
_SYSTEM_PATHS = ("/etc/hosts", "/etc/resolv.conf", "/etc/nsswitch.conf", "/etc/ssl", "/etc/pki",
                "/etc/ca-certificates", "/usr/share/ca-certificates", "/usr/local/share/ca-certificates",
                "/usr/lib/ssl")
# Volumes (and projected sources) whose items place files at paths of their own.
_ITEM_KINDS = ("configMap", "secret", "downwardAPI")
# Probe and hook fields that send the kubelet's requests to a host other than the pod.
_HANDLER_HOST = re.compile(r"\.(httpGet|tcpSocket)\.host$")
_HANDLER_HEADER = re.compile(r"\.httpGet\.httpHeaders\[\d+\]\.name$")
SAFE_VOLUME_KINDS = frozenset({"name", "emptyDir", "configMap", "secret", "projected", "downwardAPI"})


def redirects_storage(name: str) -> bool:
    upper = name.upper()
    return (
        upper in _REDIRECT_NAMES
        or upper.startswith(_REDIRECT_PREFIXES)
        or any(word in upper for word in _REDIRECT_WORDS)
        or is_reserved_env_name(upper)
    )


def redirects_trust(name: str) -> bool:
    """Whether a variable chooses the certificates TLS clients trust."""
    return bool(_TRUST_WORDS & set(name.upper().split("_")))


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


def template_strings(spec: TrainingJobSpec) -> Iterator[tuple[str, str]]:
    """(path, string) of every string in spec.podTemplate.spec, whatever its field: env, commands,
    lifecycle hooks, probes, every kind of container, and fields Kubernetes adds later."""
    yield from _strings(spec.pod_template.spec, "spec.podTemplate.spec")


def _strings(value: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _strings(item, f"{path}[{index}]")


def embedded_uris(spec: TrainingJobSpec) -> Iterator[tuple[str, str, str]]:
    """(path, text, URI) of every storage URI in spec.env values, commands, arguments, Ray flags, pod
    annotations (a downward-API volume or fieldRef hands those to the container) and every string
    of the pod template, as written; policy.residency.expansion judges what the containers receive after
    expansion."""
    texts: list[tuple[str, str]] = [(f"spec.env[{i}]", var.value) for i, var in enumerate(spec.env) if var.value]
    texts += [(f"spec.command[{i}]", arg) for i, arg in enumerate(spec.command or [])]
    texts += [(f"spec.args[{i}]", arg) for i, arg in enumerate(spec.args or [])]
    texts += [(f"spec.ray.rayStartParams[{k}]", v) for k, v in spec.ray.ray_start_params.items()]
    texts += [
        (f"spec.podTemplate.metadata.annotations[{k}]", v) for k, v in spec.pod_template.metadata.annotations.items()
    ]
    texts += list(template_strings(spec))
    for path, text in texts:
        for uri in storage_uris(text):
            yield path, text, uri


def storage_uris(text: str) -> Iterator[str]:
    """The URIs whose scheme the trainer's storage layer opens (policy.residency.schemes) in `text` and in
    every decoding of it: at each `://` and `::`, every protocol name that ends there (`1s3://`,
    `a_s3://` and `zzz::s3://` each hold an s3 URI). A URI runs to the next one's protocol name,
    which is judged on its own (as strictly: `..`, `.` and empty segments are refused there too),
    so the scan stays linear in the text."""
    found: dict[str, None] = {}
    for reading in readings(text):
        schemes: list[tuple[int, list[int]]] = []  # (separator position, starts of the protocols ending there)
        for separator in _SEPARATOR.finditer(reading):
            end = separator.start()
            starts = [s for s in range(max(0, end - _LONGEST_PROTOCOL), end)
                      if reading[s:end].lower() in STORAGE_PROTOCOLS]
            if starts:
                schemes.append((end, starts))
        cut = len(reading)
        uris: list[list[str]] = []
        for end, starts in reversed(schemes):
            stop = _URI_END.search(reading, end, cut)
            uris.append([reading[s:stop.start() if stop else cut] for s in starts])
            cut = starts[0]
        found.update(dict.fromkeys(uri for group in reversed(uris) for uri in group))
    yield from found


def readings(text: str) -> list[str]:
    """`text`, then each layer of JSON string escapes (`s3:\\/\\/`, `\\u002f`) and percent-encoding
    (`s3%3A%2F%2F`) undone, as a JSON parser or a URL decoder in the container would."""
    found = [text]
    for _ in range(_DECODING_ROUNDS):
        unescaped = _ESCAPE.sub(_unescape, found[-1])
        decoded = urllib.parse.unquote(unescaped)
        if decoded == found[-1]:
            break
        found += [unescaped, decoded]
    return list(dict.fromkeys(found))


def _unescape(match: re.Match[str]) -> str:
    code = match.group(1)
    if code[0] in "uUx" or code[0].isdigit():
        value = int(code[1:], 16) if code[0] in "uUx" else int(code, 8)
        return chr(value) if value <= sys.maxunicode else match.group(0)
    return _SIMPLE_ESCAPES.get(code, code)


def env_from(spec: TrainingJobSpec) -> Iterator[str]:
    """Paths of envFrom blocks: they import variables the admission cannot see."""
    for path, container in containers(spec.pod_template.spec):
        if container.get("envFrom"):
            yield f"{path}.envFrom"


def config_mounts(spec: TrainingJobSpec) -> Iterator[tuple[str, str]]:
    """(path, file path) of mounts and volume items that place files where storage clients read
    their configuration or where names are resolved and certificates trusted, or that cover a
    home directory; paths are judged as the container runtime reads them (`//home/./trainer/`
    is `/home/trainer`)."""
    for path, container in containers(spec.pod_template.spec):
        mounts = container.get("volumeMounts")
        for index, mount in enumerate(mounts if isinstance(mounts, list) else []):
            if not isinstance(mount, dict):
                continue
            target = str(mount.get("mountPath", ""))  # subPath picks what of the volume appears there
            if redirecting_mount(target):
                yield f"{path}.volumeMounts[{index}].mountPath", target
    for index, volume in enumerate(_volumes(spec)):
        for kind in _ITEM_KINDS:
            yield from _config_items(f"spec.podTemplate.spec.volumes[{index}].{kind}", volume.get(kind))
        projected = volume.get("projected")
        sources = projected.get("sources") if isinstance(projected, dict) else None
        for s, source in enumerate(sources if isinstance(sources, list) else []):
            for kind in _ITEM_KINDS:
                if isinstance(source, dict):
                    yield from _config_items(
                        f"spec.podTemplate.spec.volumes[{index}].projected.sources[{s}].{kind}", source.get(kind)
                    )


def redirecting_mount(target: str) -> bool:
    """Whether a mount at `target` covers a home directory, a storage client's configuration or
    a system file that resolves names or holds trusted certificates."""
    path = posixpath.normpath("/" + target.lstrip("/"))  # normpath keeps a leading `//`
    return bool(
        _HOME_DIR.match(path)
        or CONFIG_SEGMENTS & set(path.split("/"))
        or any(f"{path}/".startswith(f"{system}/") or system.startswith(f"{path.rstrip('/')}/")
               for system in _SYSTEM_PATHS)
    )


def _config_items(path: str, source: Any) -> Iterator[tuple[str, str]]:
    items = source.get("items") if isinstance(source, dict) else None
    for index, item in enumerate(items if isinstance(items, list) else []):
        file_path = str(item.get("path", "")) if isinstance(item, dict) else ""
        if CONFIG_SEGMENTS & set(file_path.split("/")):
            yield f"{path}.items[{index}].path", file_path


def name_redirects(spec: TrainingJobSpec) -> Iterator[tuple[str, str]]:
    """(path, value) of pod template fields that change where names resolve (hostAliases, a
    dnsConfig's nameservers, searches or options, dnsPolicy None) or that send the kubelet's
    probe and hook requests to a host other than the pod (httpGet/tcpSocket host, a Host header)."""
    pod = spec.pod_template.spec
    for key in ("hostAliases", "dnsConfig"):
        if pod.get(key):
            yield f"spec.podTemplate.spec.{key}", json.dumps(pod[key])
    if pod.get("dnsPolicy") == "None":
        yield "spec.podTemplate.spec.dnsPolicy", "None"
    for path, value in template_strings(spec):
        if _HANDLER_HOST.search(path) or (_HANDLER_HEADER.search(path) and value.lower() == "host"):
            yield path, value


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
