"""The operator's Prometheus metrics, on one explicit CollectorRegistry per operator instance.

No default (process-global) registry: two operators in one process (tests) or a re-created
operator never share counters, and whoever builds the operator decides what is exposed.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Callable, Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from kubetrain.api.status import Phase

# Reconciles take milliseconds when nothing changes and up to seconds when they create pods and
# wait on the API server.
RECONCILE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class PhaseCollector(Collector):
    """`kubetrain_trainingjobs{phase}`, computed at scrape time from what the watches delivered,
    so it can never drift from the jobs it counts. Every phase is always exported (0 when none)."""

    def __init__(self, phases: Callable[[], Iterable[str]]) -> None:
        self._phases = phases

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily("kubetrain_trainingjobs", "TrainingJobs by phase.", labels=["phase"])
        counts = Tally(self._phases())
        for phase in sorted({*Phase, *counts}):
            family.add_metric([phase], counts.get(phase, 0))
        yield family


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

    def watch_phases(self, phases: Callable[[], Iterable[str]]) -> None:
        """Exports the phase gauge from `phases` (the phase of every known job) at each scrape."""
        self.registry.register(PhaseCollector(phases))

    def restarted(self, namespace: str, count: int) -> None:
        if count > 0:
            self.job_restarts.labels(namespace).inc(count)


def serve(registry: CollectorRegistry, port: int, address: str = "0.0.0.0") -> Callable[[], None]:
    """Serves `registry` on http://address:port/metrics in a daemon thread; returns its stopper."""
    server, thread = start_http_server(port, address, registry=registry)

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

    return stop
