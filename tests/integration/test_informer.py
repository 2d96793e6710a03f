"""The operator's own list-and-watch of its pods (controller/informer.py) against the real API
server: the listing, the events after it, and a watch ended by the server and resumed. (A
version the server no longer has, 410 Gone, is in tests/unit/test_informer_events.py: this API
server kept serving watches from compacted versions.)"""

from __future__ import annotations

import time
from typing import Any

import kubernetes
import pytest

from kubetrain.api.contract import JOB_NAME_LABEL, MANAGED_BY, MANAGED_BY_LABEL
from kubetrain.controller import kube as kube_module
from kubetrain.controller.cache import ClusterCache
from kubetrain.controller.informer import ChildInformer
from kubetrain.controller.kube import Kube
from kubetrain.controller.metrics import OperatorMetrics
from tests.helpers import wait_for

pytestmark = pytest.mark.cluster


def managed_pod(name: str, job: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": {MANAGED_BY_LABEL: MANAGED_BY, JOB_NAME_LABEL: job}},
            # A node selector no node has: the pod stays Pending, nothing else changes it.
            "spec": {"nodeSelector": {"kubetrain.io/test": "nowhere"},
                     "containers": [{"name": "main", "image": "trainer:dev"}]}}


def no_read(namespace: str, job: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    raise AssertionError(f"{namespace}/{job}'s children were read from the API, not from the informer")


def pod_names(cache: ClusterCache, namespace: str, job: str) -> list[str]:
    pods, _ = cache.list_children(namespace, job)
    return sorted(p["metadata"]["name"] for p in pods)


def test_the_informer_lists_then_follows_creates_and_deletes_across_watch_restarts(
    api: kubernetes.client.ApiClient, namespace: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    core = kubernetes.client.CoreV1Api(api)
    core.create_namespaced_pod(namespace, managed_pod("a-worker-0", "a"))
    core.create_namespaced_pod(namespace, managed_pod("a-worker-1", "a"))
    monkeypatch.setattr(kube_module, "LIST_PAGE", 1)  # the listing comes in two pages
    kube = Kube(api, OperatorMetrics())
    cache = ClusterCache(kube)
    woken: list[tuple[str, str]] = []
    # Services listed up front (none), so the cache answers for pods from the informer alone.
    cache.listing_started("Service", namespace)
    cache.listed("Service", namespace, [])
    informer = ChildInformer(kube, cache, lambda ns, job: woken.append((ns, job)), "Pod", namespace,
                             timeout=3, read_timeout=30)
    informer.start()
    try:
        wait_for(lambda: (namespace, "a") in woken or None, timeout=30, what="the listing")
        kube.list_children = no_read  # type: ignore[method-assign]  # from here on the cache answers alone
        assert pod_names(cache, namespace, "a") == ["a-worker-0", "a-worker-1"]

        core.create_namespaced_pod(namespace, managed_pod("b-worker-0", "b"))
        wait_for(lambda: pod_names(cache, namespace, "b") == ["b-worker-0"] or None, timeout=30,
                 what="the created pod's event")
        assert (namespace, "b") in woken

        time.sleep(4)  # the API server ends the first watch (3 s): the informer resumes where it was
        core.create_namespaced_pod(namespace, managed_pod("b-worker-1", "b"))
        wait_for(lambda: pod_names(cache, namespace, "b") == ["b-worker-0", "b-worker-1"] or None, timeout=30,
                 what="an event after the first watch ended")
        core.delete_namespaced_pod("b-worker-0", namespace, grace_period_seconds=0)
        wait_for(lambda: pod_names(cache, namespace, "b") == ["b-worker-1"] or None, timeout=30,
                 what="the deletion")
    finally:
        informer.stop()
