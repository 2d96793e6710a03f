"""High availability with live operator processes on the real control plane: of several replicas
electing a leader through one Lease, only the leader acts; a standby takes over after SIGKILL
within the stated bound, after a graceful stop at once, and a leader whose Lease is taken stops."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest

from kubetrain.devcluster.cluster import LocalCluster
from tests.builders import example
from tests.helpers import wait_for
from tests.jobs import Jobs
from tests.operator_process import OperatorProcess
from tests.stalling_proxy import StallingProxy

pytestmark = pytest.mark.cluster

LEASE = "kubetrain-operator"
RENEW_DEADLINE_SECONDS = 10.0  # the default, as the chart sets it
# leaseDuration + 2 x retryPeriod with the defaults (15 s, 2 s) is 19 s: docs/install.md "High availability".
FAILOVER_BOUND_SECONDS = 20.0


class Replicas:
    """Operator processes sharing one Lease in the test's namespace. Each serves the webhooks
    too, unless told not to; the one started last is the one the API server calls (here each
    replica registers its own URL; the chart's replicas all register one Service)."""

    def __init__(self, cluster: LocalCluster, namespace: str, tmp: Path) -> None:
        self.cluster = cluster
        self.namespace = namespace
        self.tmp = tmp
        self.started: list[OperatorProcess] = []

    def start(self, identity: str, webhook: bool = True, kubeconfig: Path | None = None) -> OperatorProcess:
        proc = OperatorProcess(
            kubeconfig or self.cluster.kubeconfig, self.tmp / identity / "operator.log",
            extra_args=["--leader-election", f"--leader-election-namespace={self.namespace}",
                        f"--leader-election-identity={identity}"],
            webhook=webhook,
            admin_kubeconfig=self.cluster.kubeconfig,
        )
        self.started.append(proc)
        proc.start()
        return proc

    def holder(self, api: kubernetes.client.ApiClient) -> str | None:
        lease = kubernetes.client.CoordinationV1Api(api).read_namespaced_lease(LEASE, self.namespace)
        return lease.spec.holder_identity

    def stop_all(self) -> None:
        for proc in self.started:
            proc.stop()


@pytest.fixture
def replicas(
    cluster: LocalCluster, crds: Path, sole_operator: None, namespace: str, tmp_path: Path
) -> Iterator[Replicas]:
    group = Replicas(cluster, namespace, tmp_path)
    try:
        yield group
    finally:
        group.stop_all()


@pytest.fixture
def jobs(api: kubernetes.client.ApiClient, namespace: str) -> Jobs:
    return Jobs(api, namespace)


def only_one_leads(*procs: OperatorProcess) -> OperatorProcess | None:
    leading = [proc for proc in procs if proc.leading()]
    assert len(leading) <= 1, f"{len(leading)} replicas lead at once"
    return leading[0] if leading else None


def not_leading(proc: OperatorProcess) -> bool:
    """Also once the replica has stepped down and is exiting, its metrics server gone."""
    try:
        return not proc.leading()
    except OSError:
        return not proc.running()


def attempt_running(jobs: Jobs, name: str, attempt: str, workers: int = 2) -> list[Any] | None:
    pods = jobs.pods(name, include_terminating=True)
    new = [p for p in pods if p.metadata.labels["kubetrain.io/attempt"] == attempt and p.status.phase == "Running"]
    return new if len(pods) == len(new) == workers else None


def test_only_the_leader_acts_and_a_standby_takes_over_after_sigkill(
    replicas: Replicas, jobs: Jobs, api: kubernetes.client.ApiClient
) -> None:
    first = replicas.start("replica-0")
    wait_for(first.leading, timeout=30, what="the first replica to lead")
    standbys = [replicas.start("replica-1"), replicas.start("replica-2")]
    assert replicas.holder(api) == "replica-0"

    name = jobs.create(example("pytorch-ddp.yaml"))
    pods = jobs.wait_pods(name, 2, phase="Running")
    jobs.wait_phase(name, "Running")
    assert only_one_leads(first, *standbys) is first
    assert first.reconciles() > 0
    assert [proc.reconciles() for proc in standbys] == [0, 0], "a standby reconciled"
    # The mutating webhook of a standby (registered last) answered the create.
    assert jobs.get(name)["metadata"]["annotations"]["kubetrain.io/submitted-by"]

    # A worker fails and the leader dies before (or while) it restarts the group.
    jobs.end_pod(pods[1].metadata.name, "Failed", 137)
    first.stop(kill=True)
    killed = time.monotonic()
    leader = wait_for(lambda: only_one_leads(*standbys), timeout=60, what="a standby to take over")
    took = time.monotonic() - killed
    assert took < FAILOVER_BOUND_SECONDS, f"failover took {took:.1f}s"
    assert replicas.holder(api) == ("replica-1" if leader is standbys[0] else "replica-2")

    restarted = wait_for(lambda: attempt_running(jobs, name, "1"), timeout=60, what="the restarted group running")
    assert sorted(p.metadata.name for p in jobs.pods(name, include_terminating=True)) == [
        f"{name}-worker-0", f"{name}-worker-1",
    ], "no duplicate pods"
    assert jobs.status(name)["restarts"] == 1
    for pod in restarted:
        jobs.end_pod(pod.metadata.name, "Succeeded", 0)
    status = jobs.wait_phase(name, "Succeeded")
    assert status["restarts"] == 1, "the restart is counted once"
    assert [e.reason for e in jobs.events(name)].count("Restarting") == 1
    other = standbys[1] if leader is standbys[0] else standbys[0]
    assert other.reconciles() == 0 and not other.leading()


def test_a_standbys_timers_do_nothing(replicas: Replicas, jobs: Jobs) -> None:
    leader = replicas.start("leader")
    wait_for(leader.leading, timeout=30, what="the first replica to lead")
    standby = replicas.start("standby")

    name = jobs.create(example("pytorch-ddp.yaml"), runPolicy={"activeDeadlineSeconds": 5})
    jobs.wait_pods(name, 2, phase="Running")
    failed = jobs.wait_phase(name, "Failed", timeout=60)
    assert any(c["type"] == "Failed" and c["reason"] == "DeadlineExceeded" for c in failed["conditions"])
    wait_for(lambda: not jobs.pods(name, include_terminating=True), timeout=60, what="pods deleted after the deadline")
    # The standby has held the job's deadline wake-up all along; it must still have fired nothing.
    time.sleep(3)
    assert standby.reconciles() == 0 and not standby.leading()
    assert [e.reason for e in jobs.events(name)].count("Failed") == 1, "one Event for the one status change"


def test_a_graceful_stop_hands_over_at_once(replicas: Replicas, jobs: Jobs, api: kubernetes.client.ApiClient) -> None:
    # Without a webhook of its own: a local replica stopping gracefully registers its own URL
    # again (kopf's clean-up of persistent webhooks), which the chart's shared Service makes moot.
    first = replicas.start("old", webhook=False)
    wait_for(first.leading, timeout=30, what="the first replica to lead")
    second = replicas.start("new")

    first.stop()  # SIGTERM, as a rolling update or a drain sends it
    assert first.proc is not None and first.proc.returncode == 0
    stopped = time.monotonic()
    wait_for(second.leading, timeout=30, what="the standby to take over")
    # Well within the 15 s a crashed leader's Lease takes to expire: it was released.
    assert time.monotonic() - stopped < 10
    assert replicas.holder(api) == "new"
    assert "released the Lease" in first.log_path.read_text()

    name = jobs.create(example("pytorch-ddp.yaml"))
    for pod in jobs.wait_pods(name, 2, phase="Running"):
        jobs.end_pod(pod.metadata.name, "Succeeded", 0)
    jobs.wait_phase(name, "Succeeded")


def test_a_leader_whose_lease_is_taken_stops_acting(replicas: Replicas, api: kubernetes.client.ApiClient) -> None:
    leader = replicas.start("leader")
    wait_for(leader.leading, timeout=30, what="the replica to lead")
    coordination = kubernetes.client.CoordinationV1Api(api)
    coordination.patch_namespaced_lease(LEASE, replicas.namespace, {"spec": {"holderIdentity": "intruder"}})

    assert leader.proc is not None
    wait_for(lambda: leader.proc.poll() is not None, timeout=30, what="the leader to stop")
    assert leader.proc.returncode == 1, "a lost lead ends the process, so its pod restarts as a standby"
    assert "lost the lead (the Lease is held by intruder)" in leader.log_path.read_text()


def test_a_leader_cut_off_from_the_api_server_stops_acting_at_its_renew_deadline(
    replicas: Replicas, cluster: LocalCluster, tmp_path: Path
) -> None:
    """The API server hangs (bytes stop, connections stay open): the renewal request hangs, and
    the client retries it when it times out, but the leader still stops renewDeadline after its
    last renewal, before a standby may take over at leaseDuration (15 s)."""
    proxy = StallingProxy(("127.0.0.1", int(cluster.server.rsplit(":", 1)[1])))
    try:
        leader = replicas.start("cut-off", webhook=False,
                                kubeconfig=proxy.kubeconfig(cluster.kubeconfig, tmp_path / "via-proxy.kubeconfig"))
        wait_for(leader.leading, timeout=30, what="the replica to lead")
        proxy.stall()
        stalled = time.monotonic()
        wait_for(lambda: not_leading(leader), timeout=60, what="the cut-off leader to stop acting")
        took = time.monotonic() - stalled
        # Its last renewal was at most one retry period (2 s) before the stall; the request
        # hanging then would be retried until 4 x 5 s had passed.
        assert took < RENEW_DEADLINE_SECONDS + 2, f"stopped acting {took:.1f}s after the API server hung"
        assert "lost the lead (no renewal succeeded for 10s)" in leader.log_path.read_text()
    finally:
        proxy.close()
