"""Starting the operator: credentials, configuration, the kopf registry, and kopf itself."""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path

import kopf
import kubernetes

from kubetrain.controller.config import OperatorConfig
from kubetrain.controller.handlers import build_registry
from kubetrain.controller.logging_setup import configure
from kubetrain.controller.metrics import OperatorMetrics, serve
from kubetrain.controller.reconciler import Reconciler
from kubetrain.kube import Kube
from kubetrain.planning import PlanInputs


USER_AGENT = "kubetrain-operator"


def api_client(kubeconfig: Path | None) -> kubernetes.client.ApiClient:
    """In-cluster credentials in a pod; the given (or $KUBECONFIG) kubeconfig elsewhere. The
    user agent names the operator in API server audit logs and request metrics."""
    if kubeconfig is None and "KUBERNETES_SERVICE_HOST" in os.environ and "KUBECONFIG" not in os.environ:
        kubernetes.config.load_incluster_config()
        client = kubernetes.client.ApiClient()
    else:
        path = kubeconfig or Path(os.environ.get("KUBECONFIG", Path.home() / ".kube" / "config"))
        os.environ["KUBECONFIG"] = str(path)  # kopf's own login reads the same file
        client = kubernetes.config.new_client_from_config(config_file=str(path))
    client.user_agent = USER_AGENT
    return client


def run_operator(
    config: OperatorConfig,
    kubeconfig: Path | None = None,
    stop_flag: threading.Event | None = None,
    ready_flag: threading.Event | None = None,
) -> None:
    configure(config.log_format, config.log_level)
    api = api_client(kubeconfig)
    metrics = OperatorMetrics()
    reconciler = Reconciler(Kube(api, metrics), PlanInputs.from_config(config), metrics)
    registry = build_registry(reconciler, config)
    stop_metrics = serve(metrics.registry, config.metrics_port) if config.metrics_port else None
    try:
        asyncio.run(
            kopf.operator(
                registry=registry,
                standalone=config.peering is None,
                peering_name=config.peering,
                clusterwide=not config.namespaces,
                namespaces=config.namespaces,
                liveness_endpoint=f"http://0.0.0.0:{config.liveness_port}/healthz",
                stop_flag=stop_flag,
                ready_flag=ready_flag,
            )
        )
    finally:
        if stop_metrics is not None:
            stop_metrics()
