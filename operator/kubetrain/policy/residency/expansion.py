"""What the containers of a job's pods will actually receive: the pods are rendered as the
operator would create them (the user's template merged in, spec.ray.rayStartParams turned into
flags, the operator's env contract), then every env value, command and argument is expanded
with the kubelet's `$(VAR)` rules, and every probe's exec command with the prober's. A value
whose expansion depends on something the operator cannot see (a configMapKeyRef, a
secretKeyRef, an envFrom import) is reported as unjudgeable.

The kubelet's rules (k8s.io/kubernetes third_party/forked/golang/expansion, kubelet
makeEnvironmentVariables): env entries are expanded in order, each seeing only the entries
before it; command and args see the container's final env; `$$` is a literal `$`; a reference
to an undefined name stays as written, `$(NAME)`.

Invoked from `kubetrain.policy.residency.evaluate` under data or output rules.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from kubetrain.api.job import TrainingJob
from kubetrain.api.nodepools import NodePoolCatalogue
from kubetrain.render.errors import InvalidSpec
from kubetrain.render.job import render_children
from kubetrain.render.settings import RenderSettings

# The image is the operator's setting, not the user's; it reaches KUBETRAIN_IMAGE only.
_SETTINGS = RenderSettings(default_image="operator-default-image")
# Contract variables judged by their own rules (the dataset and output URIs, as written) or that
# are not data at all (the submitter's user name, the image): their values are not scanned, though
# a user string that refers to them is judged with their value in place. The URIs are reported
# only when the kubelet would change them (`$(VAR)` inside spec.dataset.uri).
OWN_RULE_URIS = frozenset({"KUBETRAIN_DATASET_URI", "KUBETRAIN_OUTPUT_URI"})
UNSCANNED_CONTRACT = OWN_RULE_URIS | {"KUBETRAIN_SUBMITTED_BY", "KUBETRAIN_IMAGE"}
# fieldRef paths whose values the cluster assigns (IPs, node and account names): never a user's string.
_CLUSTER_ASSIGNED = ("spec.nodeName", "spec.serviceAccountName", "status.hostIP", "status.hostIPs",
                     "status.podIP", "status.podIPs")
# A pod is created without ephemeral containers (the API server refuses them on create).
CONTAINER_LISTS = ("initContainers", "containers")
PROBES = ("livenessProbe", "readinessProbe", "startupProbe")


@dataclass(frozen=True)
class Value:
    """A variable's value as the container will see it, or why it cannot be known (`hidden`)."""

    text: str = ""
    hidden: str | None = None


@dataclass(frozen=True)
class Received:
    """One string a container receives: where, as written, and after expansion; `source` is the
    valueFrom kind (secretKeyRef, fieldRef, ...) of an env entry that has one, `variable` the
    name of an env entry."""

    path: str
    written: str
    value: Value
    source: str | None = None
    variable: str | None = None


class ContainerEnv:
    """A container's variables as the kubelet builds them, in order, later entries winning; an
    envFrom import makes every name it could define unknowable."""

    def __init__(self) -> None:
        self.values: dict[str, Value] = {}
        self.imports: list[str] = []

    def lookup(self, name: str) -> Value | None:
        """None: undefined, the reference stays as written."""
        if name in self.values:
            return self.values[name]
        if self.imports:
            return Value(text=f"$({name})", hidden=f"may come from envFrom {', '.join(self.imports)}")
        return None


def expand(text: str, env: ContainerEnv) -> Value:
    """`text` after the kubelet's expansion against `env`."""
    out: list[str] = []
    hidden: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char != "$" or i + 1 == len(text):
            out.append(char)
            i += 1
            continue
        following = text[i + 1]
        if following == "$":
            out.append("$")
            i += 2
        elif following == "(" and ")" in text[i + 2:]:
            end = text.index(")", i + 2)
            name = text[i + 2:end]
            value = env.lookup(name)
            if value is None:
                out.append(f"$({name})")
            else:
                out.append(value.text)
                if value.hidden is not None:
                    hidden.append(f"$({name}) {value.hidden}")
            i = end + 1
        else:
            out.append("$" + following)
            i += 2
    return Value(text="".join(out), hidden="; ".join(hidden) or None)


def received(job: TrainingJob, catalogue: NodePoolCatalogue) -> Iterator[Received]:
    """Every env value, command and argument of every container of the job's pods, expanded;
    nothing when the job cannot be rendered (it fails with InvalidSpec before any pod exists)."""
    try:
        pods = render_children(job, catalogue, _SETTINGS).pods
    except InvalidSpec:
        return
    seen: set[tuple[str, str]] = set()
    for pod in pods:
        for item in _pod_strings(pod):
            # Pods of one role differ only in their index: report each container string once.
            key = (item.path.split(": ", 1)[1], item.value.text)
            if key not in seen:
                seen.add(key)
                yield item


def _pod_strings(pod: dict[str, Any]) -> Iterator[Received]:
    name = pod["metadata"]["name"]
    for key in CONTAINER_LISTS:
        for index, container in enumerate(pod["spec"].get(key) or []):
            prefix = f"pod {name}: {key}[{index}]"
            env = ContainerEnv()
            for source in container.get("envFrom") or []:
                env.imports.append(str(source))
            for e, var in enumerate(container.get("env") or []):
                if not isinstance(var, dict) or not isinstance(var.get("name"), str):
                    continue
                value_source = var.get("valueFrom")
                if isinstance(value_source, dict) and value_source:
                    value = value_from(pod, value_source)
                    item = Received(f"{prefix}.env[{e}] ({var['name']})", f"valueFrom {value_source}", value,
                                    source=next(iter(value_source)), variable=var["name"])
                else:
                    value = expand(str(var.get("value") or ""), env)
                    item = Received(f"{prefix}.env[{e}] ({var['name']})", str(var.get("value") or ""), value,
                                    variable=var["name"])
                env.values[var["name"]] = value
                if var["name"] not in UNSCANNED_CONTRACT or (
                        var["name"] in OWN_RULE_URIS and value != Value(text=item.written)):
                    yield item
            for field in ("command", "args"):
                for a, arg in enumerate(container.get(field) or []):
                    yield Received(f"{prefix}.{field}[{a}]", str(arg), expand(str(arg), env))
            yield from _probe_commands(prefix, container)


def _probe_commands(prefix: str, container: dict[str, Any]) -> Iterator[Received]:
    """A probe's exec command, expanded as the prober does (kubelet
    ExpandContainerCommandOnlyStatic): against each env entry's `value` as written, later entries
    winning, a valueFrom entry empty. Lifecycle hooks' commands are run as written."""
    static = ContainerEnv()
    for var in container.get("env") or []:
        if isinstance(var, dict) and isinstance(var.get("name"), str):
            static.values[var["name"]] = Value(text=str(var.get("value") or ""))
    for probe in PROBES:
        handler = container.get(probe)
        action = handler.get("exec") if isinstance(handler, dict) else None
        command = action.get("command") if isinstance(action, dict) else None
        for c, arg in enumerate(command if isinstance(command, list) else []):
            yield Received(f"{prefix}.{probe}.exec.command[{c}]", str(arg), expand(str(arg), static))


def value_from(pod: dict[str, Any], source: dict[str, Any]) -> Value:
    """A valueFrom's value: fieldRef on the pod's own metadata is known from the rendered pod;
    values the cluster assigns are opaque but never a user's string; the rest are hidden."""
    field_ref = source.get("fieldRef")
    if isinstance(field_ref, dict):
        path = str(field_ref.get("fieldPath", ""))
        meta = pod["metadata"]
        if path in ("metadata.name", "metadata.namespace"):
            return Value(text=str(meta.get(path.split(".")[1], "")))
        for kind in ("labels", "annotations"):
            if path.startswith(f"metadata.{kind}['") and path.endswith("']"):
                return Value(text=str((meta.get(kind) or {}).get(path[len(f"metadata.{kind}['"):-2], "")))
        if path == "metadata.uid" or path in _CLUSTER_ASSIGNED:
            return Value(text=f"<{path}>")
        return Value(hidden=f"comes from fieldRef {path}, which the operator cannot read")
    if isinstance(source.get("resourceFieldRef"), dict):
        return Value(text="<resource quantity>")
    kind = next(iter(source))
    return Value(hidden=f"comes from {kind}, which the operator cannot read")
