"""The operator's metrics: each operator has its own registry, the phase gauge counts what the
watches delivered, and the API wrapper counts real failures but not "already so" answers."""

from __future__ import annotations

from typing import Any

import kubernetes
import pytest
import urllib3
from kubernetes.client.exceptions import ApiException
from prometheus_client import generate_latest

from kubetrain.api.status import Phase
from kubetrain.controller.cache import ClusterCache
from kubetrain.controller.kube import Kube
from kubetrain.controller.metrics import OperatorMetrics


def job(name: str, phase: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {"metadata": {"namespace": "ns", "name": name}}
    if phase:
        body["status"] = {"phase": phase}
    return body


def sample(metrics: OperatorMetrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


@pytest.fixture
def kube() -> Kube:
    return Kube(kubernetes.client.ApiClient(), OperatorMetrics())


def test_phase_gauge_counts_the_cached_jobs_and_exports_every_phase(kube: Kube) -> None:
    cache = ClusterCache(kube)
    kube.metrics.watch_phases(cache.phases)
    for name, phase in (("a", "Running"), ("b", "Running"), ("c", "Succeeded"), ("d", None)):
        cache.job_event("ADDED", job(name, phase))
    cache.job_event("DELETED", job("c", "Succeeded"))

    counts = {phase: sample(kube.metrics, "kubetrain_trainingjobs", phase=phase) for phase in Phase}
    assert counts == {**{phase: 0.0 for phase in Phase}, Phase.RUNNING: 2.0, Phase.PENDING: 1.0}


def test_every_operator_has_its_own_registry() -> None:
    first, second = OperatorMetrics(), OperatorMetrics()
    first.restarted("ns", 2)
    second.restarted("ns", 0)
    assert sample(first, "kubetrain_job_restarts_total", namespace="ns") == 2.0
    assert sample(second, "kubetrain_job_restarts_total", namespace="ns") is None
    assert b"kubetrain_job_restarts_total" not in generate_latest()  # nothing in the default registry


def test_api_errors_are_counted_by_verb_and_resource_but_not_already_so_answers(kube: Kube) -> None:
    def fails(status: int) -> Any:
        def request() -> None:
            raise ApiException(status=status)
        return request

    assert kube._request_or_none("delete", "pods", fails(404), done=(404,)) is None
    with pytest.raises(ApiException):
        kube._request_or_none("delete", "pods", fails(500), done=(404,))
    with pytest.raises(ApiException):
        kube._request("create", "pods", fails(403))

    def unreachable() -> None:
        raise urllib3.exceptions.MaxRetryError(None, "/api", "connection refused")  # type: ignore[arg-type]

    with pytest.raises(urllib3.exceptions.HTTPError):
        kube._request("list", "pods", unreachable)
    assert sample(kube.metrics, "kubetrain_api_errors_total", verb="delete", resource="pods") == 1.0
    assert sample(kube.metrics, "kubetrain_api_errors_total", verb="create", resource="pods") == 1.0
    assert sample(kube.metrics, "kubetrain_api_errors_total", verb="list", resource="pods") == 1.0
