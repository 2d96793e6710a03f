"""The admin verbs of `kubetrain`: the local dev cluster (`dev`), the operator (`operator run`) and
CRD generation (`crds`)."""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import uuid
from pathlib import Path
from typing import get_args

import pydantic

from kubetrain.controller.config import LeaderElectionConfig, OperatorConfig, WebhookConfig, WebhookService
from kubetrain.devcluster.cluster import LocalCluster
from kubetrain.devcluster.nodepools import GPU_RESOURCE, POOL_LABEL, REGION_LABEL
from kubetrain.policy.residency import DefaultResidency

# The CRDs for `kubectl apply` and the same files in the Helm chart, which installs them first.
CRD_DIRS = (Path("crds"), Path("charts/kubetrain/crds"))


def _default_dev_dir() -> Path:
    return Path(os.environ.get("KUBETRAIN_DEV_DIR", Path.cwd() / ".kubetrain" / "dev"))


def _dev_up(args: argparse.Namespace) -> int:
    cluster = LocalCluster(args.state_dir, real_node=args.real_node, kueue=args.kueue)
    cluster.start(log=lambda line: print(f"kubetrain: {line}", file=sys.stderr))
    print(cluster.kubeconfig)
    return 0


def _dev_down(args: argparse.Namespace) -> int:
    LocalCluster(args.state_dir).stop()
    print(f"kubetrain: cluster in {args.state_dir} stopped", file=sys.stderr)
    return 0


def _dev_pools(args: argparse.Namespace) -> int:
    """Prints the cluster's node pools as the scheduler sees them."""
    cluster = LocalCluster(args.state_dir)
    if not cluster.running():
        print(f"kubetrain: no cluster running in {args.state_dir}; run `kubetrain dev up`", file=sys.stderr)
        return 1
    nodes = json.loads(cluster.kubectl("get", "nodes", "-o", "json").stdout)["items"]
    rows = [("NODE", "POOL", "REGION", "GPUS", "GPU PRODUCT", "TAINTS", "READY")]
    for node in sorted(nodes, key=lambda n: n["metadata"]["name"]):
        labels = node["metadata"].get("labels", {})
        taints = ",".join(
            f"{t['key']}={t.get('value', '')}:{t['effect']}" for t in node["spec"].get("taints", [])
        )
        ready = any(
            c["type"] == "Ready" and c["status"] == "True" for c in node["status"].get("conditions", [])
        )
        rows.append(
            (
                node["metadata"]["name"],
                labels.get(POOL_LABEL, "-"),
                labels.get(REGION_LABEL, "-"),
                node["status"].get("allocatable", {}).get(GPU_RESOURCE, "0"),
                labels.get("nvidia.com/gpu.product", "-"),
                taints or "-",
                "Ready" if ready else "NotReady",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    return 0


def _operator_run(args: argparse.Namespace) -> int:
    from kubetrain.controller.run import run_operator

    webhook = None
    if args.webhook:
        if args.webhook_cert_dir is None:
            print("kubetrain: --webhook needs --webhook-cert-dir (where its certificate is or will be made)",
                  file=sys.stderr)
            return 2
        try:
            service = (
                WebhookService.parse(args.webhook_service, args.webhook_service_port) if args.webhook_service else None
            )
        except ValueError as exc:
            print(f"kubetrain: {exc}", file=sys.stderr)
            return 2
        webhook = WebhookConfig(
            address=args.webhook_address,
            port=args.webhook_port,
            host=args.webhook_host,
            cert_dir=args.webhook_cert_dir,
            service=service,
        )
    try:
        leader_election = _leader_election(args)
    except ValueError as exc:
        print(f"kubetrain: {exc}", file=sys.stderr)
        return 2
    config = OperatorConfig(
        namespaces=args.namespace or [],
        node_pools_file=args.node_pools,
        default_image=args.default_image,
        liveness_port=args.liveness_port,
        metrics_port=args.metrics_port,
        leader_election=leader_election,
        log_format=args.log_format,
        log_level=args.log_level,
        default_residency=args.default_residency,
        webhook=webhook,
        gang_scheduling=args.gang_scheduling,
    )
    return run_operator(config, kubeconfig=args.kubeconfig)


def _leader_election(args: argparse.Namespace) -> LeaderElectionConfig | None:
    if not args.leader_election:
        return None
    namespace = args.leader_election_namespace or _pod_namespace()
    if not namespace:
        raise ValueError("--leader-election needs --leader-election-namespace (the Lease's namespace) outside a pod")
    try:
        return LeaderElectionConfig(
            namespace=namespace,
            lease_name=args.leader_election_lease,
            identity=args.leader_election_identity or f"{socket.gethostname()}-{uuid.uuid4().hex[:8]}",
            lease_duration_seconds=args.leader_election_lease_duration,
            renew_deadline_seconds=args.leader_election_renew_deadline,
            retry_period_seconds=args.leader_election_retry_period,
        )
    except pydantic.ValidationError as exc:
        raise ValueError("; ".join(error["msg"].removeprefix("Value error, ") for error in exc.errors())) from None


def _pod_namespace() -> str:
    """The namespace of the pod this runs in (its service account's), empty outside a pod."""
    path = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
    return path.read_text().strip() if path.is_file() else ""


def _crds_generate(args: argparse.Namespace) -> int:
    from kubetrain.api.crd import write_crds

    for directory in args.dir or CRD_DIRS:
        for path in write_crds(directory):
            print(f"wrote {path}")
    return 0


def _crds_check(args: argparse.Namespace) -> int:
    from kubetrain.api.crd import check_crds

    drift = [line for directory in args.dir or CRD_DIRS for line in check_crds(directory)]
    for line in drift:
        print(line, file=sys.stderr)
    if drift:
        print("CRDs differ from the models: run `kubetrain crds generate`", file=sys.stderr)
    return 1 if drift else 0


def _env(name: str, default: str) -> str:
    return os.environ.get(f"KUBETRAIN_{name}", default)


def _default(model: type[pydantic.BaseModel], field: str) -> str:
    """The configuration model's default for `field`, as a flag's text: the flags and the
    KUBETRAIN_* variables default to what the operator's configuration declares."""
    return str(model.model_fields[field].default)


def _choices(model: type[pydantic.BaseModel], field: str) -> list[str]:
    """The values the configuration model's Literal `field` allows."""
    return [str(v) for v in get_args(model.model_fields[field].annotation)]


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    dev = sub.add_parser("dev", help="the local control plane (etcd, apiserver, scheduler, KWOK GPU nodes)")
    dev.add_argument(
        "--state-dir",
        type=Path,
        default=_default_dev_dir(),
        help="where the cluster keeps certificates, data, logs and kubeconfig "
        "(default: $KUBETRAIN_DEV_DIR or ./.kubetrain/dev)",
    )
    dev_sub = dev.add_subparsers(dest="dev_command", required=True)
    up = dev_sub.add_parser("up", help="start the cluster (idempotent); prints the kubeconfig path")
    up.add_argument(
        "--real-node",
        action="store_true",
        help="add a real node (containerd, kubelet, kube-proxy, CoreDNS) whose pods run in containers; "
        "needs root and installs Debian's docker.io, containerd and CNI plugins when missing",
    )
    up.add_argument(
        "--kueue",
        action="store_true",
        help="also run Kueue (built from source on first use; see docs/kueue.md) with TrainingJob as an "
        "external framework",
    )
    up.set_defaults(func=_dev_up)
    dev_sub.add_parser("down", help="stop the cluster").set_defaults(func=_dev_down)
    dev_sub.add_parser("pools", help="show the node pools").set_defaults(func=_dev_pools)

    op = sub.add_parser("operator", help="the TrainingJob operator")
    op_sub = op.add_subparsers(dest="operator_command", required=True)
    run = op_sub.add_parser("run", help="run the operator (flags default to KUBETRAIN_* env vars)")
    run.add_argument("--kubeconfig", type=Path, default=None, help="default: in-cluster, else $KUBECONFIG")
    run.add_argument(
        "--namespace",
        action="append",
        default=[n for n in _env("NAMESPACES", "").split(",") if n],
        help="watch only this namespace (repeatable); default: the whole cluster",
    )
    run.add_argument(
        "--node-pools",
        type=Path,
        default=Path(_env("NODE_POOLS_FILE", "")) if _env("NODE_POOLS_FILE", "") else None,
        help="YAML node-pool catalogue (default: the dev cluster's pools)",
    )
    run.add_argument("--default-image", default=_env("DEFAULT_IMAGE", _default(OperatorConfig, "default_image")))
    run.add_argument(
        "--liveness-port", type=int, default=int(_env("LIVENESS_PORT", _default(OperatorConfig, "liveness_port")))
    )
    run.add_argument(
        "--metrics-port", type=int, default=int(_env("METRICS_PORT", _default(OperatorConfig, "metrics_port"))),
        help="Prometheus /metrics port; 0 serves none",
    )
    run.add_argument(
        "--leader-election",
        action="store_true",
        default=_env("LEADER_ELECTION", "") == "true",
        help="replicas elect one leader through a Lease; the others stand by (needed with more than one replica)",
    )
    run.add_argument(
        "--leader-election-namespace",
        default=_env("LEADER_ELECTION_NAMESPACE", ""),
        help="namespace of the Lease (default in a pod: its own)",
    )
    run.add_argument(
        "--leader-election-lease", default=_env("LEADER_ELECTION_LEASE", _default(LeaderElectionConfig, "lease_name")),
        help="name of the Lease",
    )
    run.add_argument(
        "--leader-election-identity",
        default=_env("LEADER_ELECTION_IDENTITY", ""),
        help="this replica's name in the Lease (default: host name and a random suffix)",
    )
    run.add_argument(
        "--leader-election-lease-duration", type=float,
        default=float(_env("LEADER_ELECTION_LEASE_DURATION", _default(LeaderElectionConfig, "lease_duration_seconds"))),
        help="seconds without renewal before a standby takes over",
    )
    run.add_argument(
        "--leader-election-renew-deadline", type=float,
        default=float(_env("LEADER_ELECTION_RENEW_DEADLINE", _default(LeaderElectionConfig, "renew_deadline_seconds"))),
        help="seconds a leader keeps acting without a successful renewal",
    )
    run.add_argument(
        "--leader-election-retry-period", type=float,
        default=float(_env("LEADER_ELECTION_RETRY_PERIOD", _default(LeaderElectionConfig, "retry_period_seconds"))),
        help="seconds between renewals and between attempts to acquire",
    )
    run.add_argument(
        "--log-format",
        choices=_choices(OperatorConfig, "log_format"),
        default=_env("LOG_FORMAT", _default(OperatorConfig, "log_format")),
    )
    run.add_argument(
        "--log-level",
        choices=_choices(OperatorConfig, "log_level"),
        default=_env("LOG_LEVEL", _default(OperatorConfig, "log_level")),
    )
    run.add_argument(
        "--default-residency",
        choices=[d.value for d in DefaultResidency],
        default=_env("DEFAULT_RESIDENCY", _default(OperatorConfig, "default_residency")),
        help="jobs in namespaces no DataResidencyPolicy selects: allow-all (default) or deny-all",
    )
    run.add_argument(
        "--gang-scheduling",
        choices=_choices(OperatorConfig, "gang_scheduling"),
        default=_env("GANG_SCHEDULING", _default(OperatorConfig, "gang_scheduling")),
        help="auto (default): a PodGroup per job attempt where the cluster serves scheduling.k8s.io/v1beta1 "
        "(all pods bound or none); off: never",
    )
    run.add_argument(
        "--webhook",
        action="store_true",
        default=_env("WEBHOOK", "") == "true",
        help="serve the residency validating webhook and register it (failurePolicy Fail)",
    )
    run.add_argument(
        "--webhook-address",
        default=_env("WEBHOOK_ADDRESS", _default(WebhookConfig, "address")),
        help="listening address",
    )
    run.add_argument(
        "--webhook-port",
        type=int,
        default=int(_env("WEBHOOK_PORT", _default(WebhookConfig, "port"))),
        help="HTTPS port",
    )
    run.add_argument(
        "--webhook-host",
        default=_env("WEBHOOK_HOST", _default(WebhookConfig, "host")),
        help="host the API server calls when no --webhook-service is given",
    )
    run.add_argument(
        "--webhook-service",
        default=_env("WEBHOOK_SERVICE", ""),
        help="NAMESPACE/NAME of the webhook's Service: registered instead of https://HOST:PORT (in a cluster)",
    )
    run.add_argument(
        "--webhook-service-port", type=int, default=int(_env("WEBHOOK_SERVICE_PORT", _default(WebhookService, "port"))),
        help="the Service's port",
    )
    run.add_argument(
        "--webhook-cert-dir",
        type=Path,
        default=Path(_env("WEBHOOK_CERT_DIR", "")) if _env("WEBHOOK_CERT_DIR", "") else None,
        help="ca.crt, tls.crt, tls.key (generated there when missing)",
    )
    run.set_defaults(func=_operator_run)

    crds = sub.add_parser("crds", help="CustomResourceDefinitions generated from the API models")
    crds.add_argument(
        "--dir", type=Path, action="append",
        help="repeatable; default: ./crds and the Helm chart's ./charts/kubetrain/crds",
    )
    crds_sub = crds.add_subparsers(dest="crds_command", required=True)
    crds_sub.add_parser("generate", help="write the CRD YAML").set_defaults(func=_crds_generate)
    crds_sub.add_parser("check", help="fail when the committed CRDs differ").set_defaults(func=_crds_check)
