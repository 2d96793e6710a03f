"""No silent stalls: a job whose pods cannot be placed, or whose pods the API server refuses
(PodSecurity), says so in its status, its Events and `kubectl get tj` within seconds, and a
refused create is retried with backoff until the namespace allows it."""

from __future__ import annotations

import kubernetes
import pytest

from kubetrain.devcluster.cluster import LocalCluster
from tests.builders import example
from tests.helpers import wait_for
from tests.jobs import Jobs
from tests.operator_process import OperatorProcess

pytestmark = pytest.mark.cluster


@pytest.fixture
def jobs(api: kubernetes.client.ApiClient, namespace: str, operator: OperatorProcess) -> Jobs:
    return Jobs(api, namespace)


def held(jobs: Jobs, name: str, reason: str) -> dict[str, object] | None:
    running = jobs.condition(name, "Running")
    return running if running and running["status"] == "False" and running["reason"] == reason else None


def shown(cluster: LocalCluster, namespace: str, name: str) -> tuple[str, str]:
    """`kubectl get tj NAME`: its header and its row."""
    header, row = cluster.kubectl("get", "tj", name, "-n", namespace).stdout.splitlines()
    return header, row


def test_an_unschedulable_pod_says_why(jobs: Jobs, cluster: LocalCluster) -> None:
    name = jobs.create(example("pytorch-ddp.yaml"), podTemplate={"spec": {"nodeSelector": {"disk": "none"}}})
    running = wait_for(lambda: held(jobs, name, "Unschedulable"), timeout=30, what="Running=False/Unschedulable")
    assert str(running["message"]).startswith(f"pod {name}-worker-")
    assert "didn't match Pod's node affinity/selector" in str(running["message"]), running
    # The Event is posted just after the status write that carries the condition.
    warnings = wait_for(lambda: [e for e in jobs.events(name) if e.reason == "Unschedulable"], timeout=10,
                        what="the Unschedulable Event")
    assert len(warnings) == 1 and warnings[0].type == "Warning"
    header, row = shown(cluster, jobs.ns, name)
    assert "REASON" in header.split() and "Unschedulable" in row.split()


def test_a_refused_create_is_reported_and_retried_with_backoff_until_allowed(
    jobs: Jobs, cluster: LocalCluster, operator: OperatorProcess
) -> None:
    core = jobs.core
    core.patch_namespace(jobs.ns, {"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "restricted"}}})
    name = jobs.create(example("pytorch-ddp.yaml"), podTemplate={"spec": {"securityContext": {"runAsNonRoot": False}}})
    running = wait_for(lambda: held(jobs, name, "CreateRefused"), timeout=30, what="Running=False/CreateRefused")
    assert "violates PodSecurity" in str(running["message"]) and f"Pod {name}-worker-0" in str(running["message"])
    assert "CreateRefused" in shown(cluster, jobs.ns, name)[1].split()
    assert jobs.pods(name) == []
    status = jobs.status(name)
    assert "startTime" not in status and "firstStartTime" not in status, "no pod ran: not started, not frozen"
    # Retried, backing off (5 s, then 10 s), with one Warning Event for the stall.
    wait_for(lambda: "retrying in 10s" in str(jobs.condition(name, "Running")["message"]), timeout=30,
             what="a second, longer retry")
    assert [e.reason for e in jobs.events(name)].count("CreateRefused") == 1

    core.patch_namespace(jobs.ns, {"metadata": {"labels": {"pod-security.kubernetes.io/enforce": None}}})
    for pod in jobs.wait_pods(name, 2, phase="Running", timeout=60):
        jobs.end_pod(pod.metadata.name, "Succeeded", 0)
    jobs.wait_phase(name, "Succeeded")
