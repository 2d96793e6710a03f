"""Pod spec -> the local process that stands in for its container (pure, no I/O).

The rewrites here are exactly what loopback networking and the missing container runtime need;
everything else in the pod's environment reaches the process unchanged.
"""

from __future__ import annotations

import os
import re
import shlex
import sys
import zlib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from kubetrain.devcluster.localnode.rayports import (
    is_ray_pod,
    job_key,
    ray_env,
    ray_node_flags,
    with_node_flags,
    without_client_server,
)

# Images have no meaning on the local node; a container without a command runs the trainer,
# which is what the kubetrain trainer image's ENTRYPOINT does.
DEFAULT_ENTRYPOINT = ("python", "-m", "kubetrain_trainer")
PYTHON_NAMES = {"python", "python3", sys.executable}
# docs/contracts.md's pod label (devcluster stands apart from the operator's modules).
REPLICA_INDEX_LABEL = "kubetrain.io/replica-index"
RENDEZVOUS_PORT_BASE = 20000
RENDEZVOUS_PORT_SPAN = 10000
_VAR_REFERENCE = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


class LaunchError(ValueError):
    """The pod cannot run on the local node; the message says why."""


class Launch(BaseModel):
    """How to start one pod's process."""

    model_config = ConfigDict(frozen=True)

    argv: list[str]
    env: dict[str, str]
    cwd: Path
    termination_message_path: Path
    termination_message_policy: str


def rendezvous_port(pod: dict[str, Any]) -> int:
    """Every pod of one job and attempt must agree on MASTER_PORT, and concurrent jobs on the
    shared loopback must not; derive it from the owning job's uid and the attempt label."""
    return RENDEZVOUS_PORT_BASE + zlib.crc32(job_key(pod).encode()) % RENDEZVOUS_PORT_SPAN


def expand(text: str, env: dict[str, str]) -> str:
    """The kubelet's $(VAR) expansion of command and args: a defined variable is replaced, an
    undefined reference stays as written, and $$ is a literal $."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        return env.get(match.group(1), match.group(0))

    return _VAR_REFERENCE.sub(replace, text)


def _this_environment(name: str) -> str:
    """A bare command installed next to this Python (a console script of its environment, such
    as `ray`) runs from there, as the image's PATH would find it."""
    sibling = os.path.join(os.path.dirname(sys.executable), name)
    return sibling if "/" not in name and os.access(sibling, os.X_OK) else name


def _env_value(var: dict[str, Any], pod: dict[str, Any]) -> str | None:
    if "value" in var:
        return str(var["value"])
    field = var.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
    fields = {
        "metadata.name": pod["metadata"]["name"],
        "metadata.namespace": pod["metadata"].get("namespace", "default"),
        "metadata.uid": pod["metadata"].get("uid", ""),
        "spec.nodeName": pod["spec"].get("nodeName", ""),
        "spec.serviceAccountName": pod["spec"].get("serviceAccountName", "default"),
        "status.podIP": "127.0.0.1",
        "status.hostIP": "127.0.0.1",
    }
    if field in fields:
        return fields[field]
    if field and field.startswith("metadata.labels['"):
        return pod["metadata"].get("labels", {}).get(field[len("metadata.labels['") : -2])
    return None


def plan_launch(
    pod: dict[str, Any],
    pod_dir: Path,
    api_host: str,
    api_port: int,
    sa_dir: Path | None,
    ray_client: bool = True,
) -> Launch:
    """`ray_client`: whether this machine's Python has Ray Client's package; without it a Ray
    head starts no client server (rayports.without_client_server)."""
    containers = pod["spec"].get("containers", [])
    if len(containers) != 1:
        raise LaunchError(f"the local node runs exactly one container per pod, got {len(containers)}")
    container = containers[0]
    env: dict[str, str] = {}
    for var in container.get("env") or []:
        value = _env_value(var, pod)
        if value is not None:
            env[var["name"]] = value
    termination_path = pod_dir / "termination-log"
    env.update(
        {
            "KUBERNETES_SERVICE_HOST": api_host,
            "KUBERNETES_SERVICE_PORT": str(api_port),
            "HOSTNAME": pod["spec"].get("hostname") or pod["metadata"]["name"],
            "KUBETRAIN_TERMINATION_MESSAGE_PATH": str(termination_path),
            "PYTHONUNBUFFERED": "1",
        }
    )
    if sa_dir is not None:
        env["KUBETRAIN_SERVICEACCOUNT_DIR"] = str(sa_dir)
    if "MASTER_ADDR" in env:
        port = str(rendezvous_port(pod))
        env.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port})
        if "PET_MASTER_ADDR" in env:
            env.update({"PET_MASTER_ADDR": "127.0.0.1", "PET_MASTER_PORT": port})
    if "PET_RDZV_ENDPOINT" in env:
        env.update(_elastic_env(pod))
    ray = is_ray_pod(env)
    if ray:
        env.update(ray_env(pod))
    # Expanded after the rewrites above, as the kubelet expands the container's final env.
    command = [expand(str(c), env) for c in container.get("command") or DEFAULT_ENTRYPOINT]
    argv = command + [expand(str(a), env) for a in container.get("args") or []]
    argv[0] = sys.executable if argv[0] in PYTHON_NAMES else _this_environment(argv[0])
    if ray:
        argv = with_node_flags(argv if ray_client else without_client_server(argv), ray_node_flags(pod))
    return Launch(
        argv=argv,
        env=env,
        cwd=pod_dir,
        termination_message_path=termination_path,
        termination_message_policy=container.get("terminationMessagePolicy", "File"),
    )


def _elastic_env(pod: dict[str, Any]) -> dict[str, str]:
    """An elastic job's rendezvous store on the loopback, and each pod its own loopback address
    (Linux answers on all of 127/8): torchrun ranks a round's members by address, so worker 0
    (127.0.0.1) is rank 0 here as it is under its DNS name on a cluster."""
    index = int(pod["metadata"].get("labels", {}).get(REPLICA_INDEX_LABEL, "0"))
    return {
        "PET_RDZV_ENDPOINT": f"127.0.0.1:{rendezvous_port(pod)}",
        "PET_LOCAL_ADDR": f"127.0.0.{index + 1}",
    }


def describe(launch: Launch) -> str:
    return shlex.join(launch.argv)
