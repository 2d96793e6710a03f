"""Ray pods on the local node's shared loopback (pure).

In a cluster every Ray node has its own IP and Ray's fixed default ports never meet; here every
pod is 127.0.0.1, so a job's head gets GCS, dashboard and client ports of its own (derived from
the job's uid and attempt, so its workers find it), and every Ray pod gets node-level ports and a
temp dir of its own (derived from the pod's uid). Where this machine's Python lacks Ray Client,
the head runs without its client server (without_client_server). The temp dir is short and under /tmp because
Ray puts Unix sockets in it, whose paths may not exceed 107 bytes.
"""

from __future__ import annotations

import zlib
from typing import Any

RAY_HOST_ENV = "KUBETRAIN_RAY_HEAD_HOST"
HEAD_PORT_ENVS = ("KUBETRAIN_RAY_GCS_PORT", "KUBETRAIN_RAY_DASHBOARD_PORT", "KUBETRAIN_RAY_CLIENT_PORT")
HEAD_PORT_BASE, HEAD_PORT_SLOTS = 30000, 900  # 30000-32699: below Linux's ephemeral range
NODE_PORT_BASE, NODE_PORT_SLOTS = 10000, 250  # 10000-19999, 40 ports per pod
NODE_FLAGS = (
    "node-manager-port",
    "object-manager-port",
    "metrics-export-port",
    "dashboard-agent-listen-port",
    "dashboard-agent-grpc-port",
    "runtime-env-agent-port",
)
WORKER_PORTS = 34  # the rest of the pod's block, for Ray's worker processes


def is_ray_pod(env: dict[str, str]) -> bool:
    return RAY_HOST_ENV in env


def job_key(pod: dict[str, Any]) -> str:
    """The owning job's uid and the attempt label: equal for every pod of one attempt."""
    meta = pod["metadata"]
    owners = [o.get("uid", "") for o in meta.get("ownerReferences", []) if o.get("controller")]
    attempt = meta.get("labels", {}).get("kubetrain.io/attempt", "0")
    return f"{owners[0] if owners else meta.get('namespace', '')}/{attempt}"


def ray_env(pod: dict[str, Any]) -> dict[str, str]:
    """The head address every Ray pod of the attempt agrees on."""
    base = HEAD_PORT_BASE + zlib.crc32(job_key(pod).encode()) % HEAD_PORT_SLOTS * len(HEAD_PORT_ENVS)
    return {RAY_HOST_ENV: "127.0.0.1", **{name: str(base + i) for i, name in enumerate(HEAD_PORT_ENVS)}}


def ray_node_flags(pod: dict[str, Any]) -> list[str]:
    """`ray start` flags that keep this pod's Ray node apart from every other one on the host."""
    uid = pod["metadata"].get("uid", pod["metadata"]["name"])
    slot = zlib.crc32(uid.encode()) % NODE_PORT_SLOTS
    base = NODE_PORT_BASE + slot * (len(NODE_FLAGS) + WORKER_PORTS)
    workers = base + len(NODE_FLAGS)
    return [
        "--node-ip-address=127.0.0.1",
        f"--temp-dir=/tmp/kt-ray-{zlib.crc32(uid.encode()):08x}",
        *(f"--{flag}={base + i}" for i, flag in enumerate(NODE_FLAGS)),
        f"--min-worker-port={workers}",
        f"--max-worker-port={workers + WORKER_PORTS - 1}",
    ]


def without_client_server(argv: list[str]) -> list[str]:
    """The head's argv minus --ray-client-server-port: `ray start` refuses that flag where Ray
    Client's package (grpcio, `ray[client]`) is missing, as in the local node's environment, while
    without it the head simply runs no client server. Everything after `--` (the driver) is kept."""
    cut = argv.index("--") if "--" in argv else len(argv)
    flags = [a for a in argv[:cut] if not a.startswith("--ray-client-server-port")]
    return [*flags, *argv[cut:]]


def with_node_flags(argv: list[str], flags: list[str]) -> list[str]:
    """The flags go before a `--` (the head launcher's driver follows it), else at the end."""
    cut = argv.index("--") if "--" in argv else len(argv)
    return [*argv[:cut], *flags, *argv[cut:]]
