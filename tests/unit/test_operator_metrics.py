"""The operator's metrics: each operator has its own registry, the job gauges count what the
watches delivered, budgets are accounted per policy and namespace, the queue wait is observed
once per job, and the API wrapper counts real failures but not "already so" answers."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import kubernetes
import pytest
import urllib3
from kubernetes.client.exceptions import ApiException
from prometheus_client import CollectorRegistry, generate_latest

from kubetrain.api.status import Phase
from kubetrain.controller.cache import ClusterCache
from kubetrain.controller.kube import Kube
from kubetrain.controller.metrics import BudgetCollector, JobCollector, OperatorMetrics, first_run_wait
from kubetrain.policy.budget import BudgetUsage
from tests.builders import JobBuilder


def job(name: str, phase: str | None, namespace: str = "ns") -> dict[str, Any]:
    body: dict[str, Any] = {"metadata": {"namespace": namespace, "name": name}}
    if phase:
        body["status"] = {"phase": phase}
    return body


def sample(metrics: OperatorMetrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


@pytest.fixture
def kube() -> Kube:
    return Kube(kubernetes.client.ApiClient(), OperatorMetrics())


def test_job_gauges_count_the_cached_jobs_by_namespace_and_export_every_phase(kube: Kube) -> None:
    cache = ClusterCache(kube)
    kube.metrics.watch_jobs(cache.jobs)
    for name, phase, namespace in (("a", "Running", "ns"), ("b", "Running", "ns"), ("c", "Succeeded", "ns"),
                                   ("d", None, "ns"), ("e", "Failed", "other")):
        cache.job_event("ADDED", job(name, phase, namespace))
    cache.job_event("DELETED", job("c", "Succeeded"))

    def counts(namespace: str) -> dict[str, float | None]:
        return {p: sample(kube.metrics, "kubetrain_trainingjobs", namespace=namespace, phase=p) for p in Phase}

    assert counts("ns") == {**{phase: 0.0 for phase in Phase}, Phase.RUNNING: 2.0, Phase.PENDING: 1.0}
    assert counts("other") == {**{phase: 0.0 for phase in Phase}, Phase.FAILED: 1.0}
    assert sample(kube.metrics, "kubetrain_gpu_hours_used", namespace="ns") == 0.0  # jobs without a spec count nothing


def test_gpu_hours_used_sum_the_jobs_of_each_namespace() -> None:
    now = datetime(2026, 12, 2, 12, tzinfo=timezone.utc)
    started = JobBuilder.eu("gpu", "team").spec(workers=2).resources(gpus=4).started(now - timedelta(hours=0.5))
    jobs = [started.named("a").manifest(), started.named("b").completed(now - timedelta(hours=0.25)).manifest()]
    registry = CollectorRegistry()
    registry.register(JobCollector(lambda: jobs, now=lambda: now))
    assert registry.get_sample_value("kubetrain_gpu_hours_used", {"namespace": "team"}) == pytest.approx(4.0 + 2.0)


def test_budget_gauges_export_each_policys_account() -> None:
    registry = CollectorRegistry()
    usage = BudgetUsage(policy="daily", namespace="team", gpu_hours=10, used=3, remaining=5)
    registry.register(BudgetCollector(lambda: [usage]))
    labels = {"namespace": "team", "policy": "daily"}
    values = [registry.get_sample_value(name, labels) for name in
              ("kubetrain_budget_gpu_hours", "kubetrain_budget_gpu_hours_used", "kubetrain_budget_gpu_hours_remaining")]
    assert values == [10, 3, 5]


CREATED = "2026-12-02T12:00:00Z"
NOW = datetime(2026, 12, 2, 12, 1, 30, tzinfo=timezone.utc)
SUSPENDED = {"type": "Suspended", "status": "False", "reason": "Resumed", "lastTransitionTime": CREATED}


@pytest.mark.parametrize(
    ("old", "patch", "wait"),
    [
        ({"phase": "Starting"}, {"phase": "Running"}, 90.0),
        ({}, {"phase": "Running"}, 90.0),
        ({"phase": "Starting"}, {"phase": "Starting"}, None),
        ({"phase": "Running"}, {"conditions": []}, None),  # still running: phase not in the patch
        ({"phase": "Restarting", "restarts": 1}, {"phase": "Running"}, None),
        ({"phase": "Restarting", "attempt": 1}, {"phase": "Running"}, None),  # a rollout of a workers edit
        ({"phase": "Starting", "conditions": [SUSPENDED]}, {"phase": "Running"}, None),  # resumed
    ],
)
def test_the_queue_wait_is_observed_once_when_every_worker_first_runs(
    old: dict[str, Any], patch: dict[str, Any], wait: float | None
) -> None:
    raw = {"metadata": {"namespace": "ns", "name": "a", "creationTimestamp": CREATED}}
    assert first_run_wait(raw, old, patch, NOW) == wait
    metrics = OperatorMetrics()
    metrics.status_written(raw, old, patch, NOW)
    observed = sample(metrics, "kubetrain_queue_wait_seconds_count", namespace="ns")
    assert observed == (1.0 if wait is not None else None)


def test_status_writes_count_restarts() -> None:
    metrics = OperatorMetrics()
    raw = {"metadata": {"namespace": "ns", "name": "a", "creationTimestamp": CREATED}}
    metrics.status_written(raw, {"restarts": 1}, {"restarts": 3}, NOW)
    metrics.status_written(raw, {"restarts": 3}, {"phase": "Failed"}, NOW)
    metrics.stalled("ns", 1)
    assert sample(metrics, "kubetrain_job_restarts_total", namespace="ns") == 2.0
    assert sample(metrics, "kubetrain_job_stalls_total", namespace="ns") == 1.0


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
