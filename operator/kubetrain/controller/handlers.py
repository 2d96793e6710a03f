"""kopf handlers: thin triggers for one level-triggered reconcile per job.

Every TrainingJob event and every event of a pod the operator manages calls
Reconciler.reconcile(namespace, job). The reconcile reads fresh state, so a missed or repeated
event never matters, and kopf's initial listing at start-up is the "resume" of every job. Only
on-event handlers are used: kopf then keeps no progress annotations on the user's object and
needs no finalizer (children are owned and garbage-collected).
"""

from __future__ import annotations

import copy
import logging
from typing import Any

import kopf

from kubetrain.controller.config import OperatorConfig
from kubetrain.controller.reconciler import Reconciler
from kubetrain.kube import GROUP, JOB_LABEL, PLURAL, VERSION


MANAGED = {"app.kubernetes.io/managed-by": "kubetrain"}


def _plain(body: kopf.Body) -> dict[str, Any]:
    """kopf hands out live read-only views; the cache keeps plain copies."""
    return copy.deepcopy(dict(body))


def build_registry(reconciler: Reconciler, config: OperatorConfig) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()

    @kopf.on.startup(registry=registry)
    def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        # Long-lived watches can go silent without an error; bounded watches are re-established.
        settings.watching.server_timeout = config.watch_server_timeout
        settings.watching.client_timeout = config.watch_client_timeout
        settings.watching.connect_timeout = 30
        settings.posting.level = logging.WARNING
        settings.execution.max_workers = 16

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        # The same credentials as the API client: the pod's service account in a cluster,
        # $KUBECONFIG (set by run_operator) elsewhere.
        return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)

    @kopf.on.cleanup(registry=registry)
    def stop(**_: Any) -> None:
        reconciler.shutdown()

    @kopf.on.event(GROUP, VERSION, PLURAL, registry=registry)
    def job_changed(type: str | None, body: kopf.Body, name: str, namespace: str, **_: Any) -> None:
        if type == "DELETED":
            reconciler.forget(namespace, name)
            return
        reconciler.cache.job_event(type, _plain(body))
        reconciler.reconcile(namespace, name)

    @kopf.on.event("", "v1", "pods", labels=MANAGED, registry=registry)
    @kopf.on.event("", "v1", "services", labels=MANAGED, registry=registry)
    def child_changed(
        type: str | None, body: kopf.Body, resource: kopf.Resource, labels: dict[str, str], namespace: str, **_: Any
    ) -> None:
        job = labels.get(JOB_LABEL)
        if job:
            reconciler.cache.child_event(type, resource.kind, _plain(body))
            reconciler.reconcile(namespace, job)

    @kopf.on.probe(id="jobs_tracked", registry=registry)
    def jobs_tracked(**_: Any) -> int:
        return reconciler.tracked()

    return registry
