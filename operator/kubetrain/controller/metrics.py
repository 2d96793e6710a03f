"""The operator's Prometheus metrics, on one explicit CollectorRegistry per operator instance.

No default (process-global) registry: two operators in one process (tests) or a re-created
operator never share counters, and whoever builds the operator decides what is exposed.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter as Tally
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from kubetrain.api.status import ConditionType, Phase
from kubetrain.policy.budget import BudgetUsage, job_used_gpu_hours

# Reconciles take milliseconds when nothing changes and up to seconds when they create pods and
# wait on the API server.
RECONCILE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# From a job's creation to every worker running: seconds on an idle cluster, hours behind a queue
# of GPU jobs or a budget period.
QUEUE_WAIT_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 21600.0, 86400.0)

Clock = Callable[[], dt.datetime]


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class JobCollector(Collector):
    """`kubetrain_trainingjobs{namespace,phase}` and `kubetrain_gpu_hours_used{namespace}`,
    computed at scrape time from what the watches delivered, so they can never drift from the jobs
    they count. Every phase is exported for each namespace with jobs (0 when none)."""

    def __init__(self, jobs: Callable[[], Iterable[dict[str, Any]]], now: Clock = utc_now) -> None:
        self._jobs = jobs
        self._now = now

    def collect(self) -> Iterator[Metric]:
        by_phase = GaugeMetricFamily(
            "kubetrain_trainingjobs", "TrainingJobs by namespace and phase.", labels=["namespace", "phase"]
        )
        hours = GaugeMetricFamily(
            "kubetrain_gpu_hours_used",
            "GPU-hours used by the TrainingJobs that exist, by namespace (workers x gpus x time run).",
            labels=["namespace"],
        )
        counts: Tally[tuple[str, str]] = Tally()
        used: dict[str, float] = {}
        now = self._now()
        for raw in self._jobs():
            namespace = raw["metadata"]["namespace"]
            counts[(namespace, (raw.get("status") or {}).get("phase") or Phase.PENDING)] += 1
            used[namespace] = used.get(namespace, 0.0) + job_used_gpu_hours(raw, now)
        namespaces = sorted(used)
        for namespace in namespaces:
            for phase in sorted({*Phase, *(p for n, p in counts if n == namespace)}):
                by_phase.add_metric([namespace, phase], counts.get((namespace, phase), 0))
            hours.add_metric([namespace], used[namespace])
        yield by_phase
        yield hours


class BudgetCollector(Collector):
    """Each BudgetPolicy's account of each namespace it selects that has jobs, at scrape time."""

    def __init__(self, usage: Callable[[], Iterable[BudgetUsage]]) -> None:
        self._usage = usage

    def collect(self) -> Iterator[Metric]:
        labels = ["namespace", "policy"]
        limit = GaugeMetricFamily(
            "kubetrain_budget_gpu_hours", "GPU-hours a BudgetPolicy grants per period.", labels=labels
        )
        used = GaugeMetricFamily(
            "kubetrain_budget_gpu_hours_used", "GPU-hours the namespace's jobs used in the current period.",
            labels=labels,
        )
        remaining = GaugeMetricFamily(
            "kubetrain_budget_gpu_hours_remaining",
            "GPU-hours admission would still grant in the current period (jobs admitted and running hold their "
            "whole estimate).",
            labels=labels,
        )
        for usage in self._usage():
            key = [usage.namespace, usage.policy]
            limit.add_metric(key, usage.gpu_hours)
            used.add_metric(key, usage.used)
            remaining.add_metric(key, usage.remaining)
        yield limit
        yield used
        yield remaining


class OperatorMetrics:
    """The metrics one operator instance updates; `registry` is what its /metrics serves."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.reconcile_duration = Histogram(
            "kubetrain_reconcile_duration_seconds",
            "Time of one reconcile of one job, by outcome (ok, conflict, error).",
            ["outcome"],
            buckets=RECONCILE_BUCKETS,
            registry=self.registry,
        )
        self.job_restarts = Counter(
            "kubetrain_job_restarts",
            "Whole-group restarts of TrainingJobs, by namespace.",
            ["namespace"],
            registry=self.registry,
        )
        self.job_stalls = Counter(
            "kubetrain_job_stalls",
            "TrainingJobs found Stalled (no progress report within runPolicy.progressDeadlineSeconds), by namespace.",
            ["namespace"],
            registry=self.registry,
        )
        self.queue_wait = Histogram(
            "kubetrain_queue_wait_seconds",
            "Seconds from a TrainingJob's creation to the first time every worker ran, by namespace.",
            ["namespace"],
            buckets=QUEUE_WAIT_BUCKETS,
            registry=self.registry,
        )
        self.api_errors = Counter(
            "kubetrain_api_errors",
            "Failed Kubernetes API requests of the operator, by verb and resource (answers that mean "
            "'already done', such as 404 on delete or 409 on create, are not errors).",
            ["verb", "resource"],
            registry=self.registry,
        )
        self.leader = Gauge(
            "kubetrain_leader",
            "1 while this replica reconciles (it holds the leader Lease, or runs without leader election); "
            "0 while it stands by.",
            registry=self.registry,
        )

    def watch_jobs(self, jobs: Callable[[], Iterable[dict[str, Any]]]) -> None:
        """Exports the per-namespace job gauges from `jobs` (every known job) at each scrape."""
        self.registry.register(JobCollector(jobs))

    def watch_budgets(self, usage: Callable[[], Iterable[BudgetUsage]]) -> None:
        """Exports the BudgetPolicy gauges from `usage` at each scrape."""
        self.registry.register(BudgetCollector(usage))

    def restarted(self, namespace: str, count: int) -> None:
        if count > 0:
            self.job_restarts.labels(namespace).inc(count)

    def stalled(self, namespace: str, count: int) -> None:
        if count > 0:
            self.job_stalls.labels(namespace).inc(count)

    def status_written(self, raw: dict[str, Any], old: dict[str, Any], patch: dict[str, Any], now: dt.datetime) -> None:
        """Counts what a status write of job `raw` (from status `old`, by merge patch `patch`) did."""
        namespace = raw["metadata"]["namespace"]
        self.restarted(namespace, (patch.get("restarts", old.get("restarts")) or 0) - (old.get("restarts") or 0))
        wait = first_run_wait(raw, old, patch, now)
        if wait is not None:
            self.queue_wait.labels(namespace).observe(wait)


def first_run_wait(raw: dict[str, Any], old: dict[str, Any], patch: dict[str, Any], now: dt.datetime) -> float | None:
    """Seconds the job waited from its creation until every worker ran, when this write is the
    first to say so: not after a restart, a rollout or a resumed suspension, which are not waits
    in the queue."""
    if patch.get("phase") != Phase.RUNNING or old.get("phase") == Phase.RUNNING:
        return None
    if old.get("restarts") or old.get("attempt"):
        return None
    if any(c.get("type") == ConditionType.SUSPENDED for c in old.get("conditions") or []):
        return None
    created = raw["metadata"].get("creationTimestamp")
    if not created:
        return None
    since = dt.datetime.fromisoformat(str(created).replace("Z", "+00:00"))
    return max((now - since).total_seconds(), 0.0)


def serve(registry: CollectorRegistry, port: int, address: str = "0.0.0.0") -> Callable[[], None]:
    """Serves `registry` on http://address:port/metrics in a daemon thread; returns its stopper."""
    server, thread = start_http_server(port, address, registry=registry)

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

    return stop
