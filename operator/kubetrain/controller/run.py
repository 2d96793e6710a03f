"""Starting the operator: credentials, configuration, the kopf registry, leader election, and kopf
itself."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
from collections.abc import Callable
from pathlib import Path

import kopf
import kubernetes
from kopf._core.engines.peering import Identity  # kopf.operator() types it; kopf exports no public name

from kubetrain.controller.config import OperatorConfig
from kubetrain.controller.gang import pod_groups_served
from kubetrain.controller.handlers import build_registry
from kubetrain.controller.informer import PLURALS, start_informers
from kubetrain.controller.kube import Kube
from kubetrain.controller.kueue import kueue_served
from kubetrain.controller.leadership import LeaderElector
from kubetrain.controller.logging_setup import configure
from kubetrain.controller.metrics import OperatorMetrics, serve
from kubetrain.controller.model import ModelReconciler
from kubetrain.controller.reconciler import Reconciler
from kubetrain.controller.requeue import WAKE_UP_WORKERS
from kubetrain.controller.schedule import ScheduleReconciler
from kubetrain.controller.sweep import SweepReconciler
from kubetrain.controller.webhook_certs import CertRenewer
from kubetrain.controller.webhook_server import webhook_hosts

USER_AGENT = "kubetrain-operator"


def api_client(kubeconfig: Path | None, connections: int) -> kubernetes.client.ApiClient:
    """In-cluster credentials in a pod; the given (or $KUBECONFIG) kubeconfig elsewhere. The
    user agent names the operator in API server audit logs and request metrics. `connections`:
    how many the client keeps open (api_connections)."""
    configuration = kubernetes.client.Configuration()
    if kubeconfig is None and "KUBERNETES_SERVICE_HOST" in os.environ and "KUBECONFIG" not in os.environ:
        kubernetes.config.load_incluster_config(client_configuration=configuration)
    else:
        path = kubeconfig or Path(os.environ.get("KUBECONFIG", Path.home() / ".kube" / "config"))
        os.environ["KUBECONFIG"] = str(path)  # kopf's own login reads the same file
        kubernetes.config.load_kube_config(config_file=str(path), client_configuration=configuration)
    configuration.connection_pool_maxsize = connections
    client = kubernetes.client.ApiClient(configuration)
    client.user_agent = USER_AGENT
    return client


def api_connections(watched_namespaces: int) -> int:
    """One connection per reconcile worker and per informer watch (each holds one while it runs),
    and some for kopf's handler threads and the Lease. The client's default, 5 per CPU, is 10 on
    2 cores: each request beyond it opened a TLS connection and closed it after ("Connection pool
    is full, discarding connection" in a 5,000-job run)."""
    informers = len(PLURALS) * max(watched_namespaces, 1)
    return WAKE_UP_WORKERS + informers + 8


class KopfStop:
    """Stops kopf from another thread (the leader election's). kopf would wait for a
    threading.Event in an executor thread that keeps asyncio.run from returning, so the flag it
    gets is an asyncio.Event, set through its own loop."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requested = False
        self._setter: Callable[[], object] | None = None

    def flag(self) -> asyncio.Event:
        """Called inside kopf's event loop."""
        event = asyncio.Event()
        loop = asyncio.get_running_loop()
        with self._lock:
            self._setter = lambda: loop.call_soon_threadsafe(event.set)
            if self._requested:
                event.set()
        return event

    def request(self) -> None:
        with self._lock:
            self._requested = True
            if self._setter is not None:
                self._setter()


def run_operator(config: OperatorConfig, kubeconfig: Path | None = None) -> int:
    """Runs until stopped; 0 after a graceful stop, 1 when this replica lost the lead (it must
    not act any more: its pod restarts as a standby)."""
    configure(config.log_format, config.log_level)
    api = api_client(kubeconfig, api_connections(len(config.namespaces)))
    metrics = OperatorMetrics()
    kube = Kube(api, metrics)
    standby = config.leader_election is not None
    inputs = config.plan_inputs(pod_groups_served(kube, config))
    reconciler = Reconciler(kube, inputs, metrics, paused=standby, kueue=kueue_served(kube))
    models = ModelReconciler(kube, paused=standby)
    schedules = ScheduleReconciler(kube, paused=standby)
    sweeps = SweepReconciler(kube, inputs.catalogue, reconciler.wake, paused=standby)
    registry = build_registry(reconciler, models, schedules, sweeps, config)
    stop = KopfStop()
    lost = threading.Event()

    def lead() -> None:
        metrics.leader.set(1)
        for actor in (reconciler, models, schedules, sweeps):
            actor.resume()

    def step_down() -> None:
        for actor in (reconciler, models, schedules, sweeps):
            actor.pause()
        metrics.leader.set(0)
        lost.set()
        stop.request()

    replica_identity = Identity(config.leader_election.identity if config.leader_election else socket.gethostname())

    async def operate() -> None:
        await kopf.operator(
            registry=registry,
            standalone=True,
            clusterwide=not config.namespaces,
            namespaces=config.namespaces,
            liveness_endpoint=f"http://0.0.0.0:{config.liveness_port}/healthz",
            stop_flag=stop.flag(),
            # Named here, or kopf derives one from the user's passwd entry, which a pod running
            # as an arbitrary non-root uid (any podSecurityContext.runAsUser) does not have.
            identity=replica_identity,
        )

    informers = start_informers(kube, reconciler.cache, reconciler.wake, config.namespaces,
                                config.watch_server_timeout, config.watch_client_timeout)
    elector = LeaderElector(kube, config.leader_election, lead, step_down) if config.leader_election else None
    if elector is not None:
        elector.start()
    else:
        metrics.leader.set(1)
    renewer = CertRenewer(config.webhook.cert_dir, webhook_hosts(config.webhook)) if config.webhook else None
    if renewer is not None:
        renewer.start()
    stop_metrics = serve(metrics.registry, config.metrics_port) if config.metrics_port else None
    try:
        asyncio.run(operate())
    finally:
        for informer in informers:
            informer.stop()
        if renewer is not None:
            renewer.stop()
        # kopf's cleanup handler has stopped every wake-up and waited for the reconciles running:
        # only now may the Lease go to a standby.
        if elector is not None:
            elector.stop()
        if stop_metrics is not None:
            stop_metrics()
    return 1 if lost.is_set() else 0
