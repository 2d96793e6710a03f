"""runtime: ray on the real control plane (KWOK nodes), reconciled by the operator subprocess:
the head Service and pods, their env and placement, the phase following the head (the driver),
a dead worker replaced alone, a failed head restarting the group until backoffLimit, a driver
error that no restart can fix failing the job at once."""

from __future__ import annotations

import json
from typing import Any

import kubernetes
import pytest

from kubetrain.devcluster.cluster import LocalCluster
from tests.builders import EXAMPLES, JobBuilder, example
from tests.helpers import wait_for
from tests.jobs import GROUP, VERSION, Jobs
from tests.operator_process import OperatorProcess
from tests.residency_cases import eu_policy

pytestmark = pytest.mark.cluster

NAME = "ray-train"
HEAD = f"{NAME}-head"
WORKERS = [f"{NAME}-worker-0", f"{NAME}-worker-1"]
REGION = "topology.kubernetes.io/region"


@pytest.fixture
def jobs(api: kubernetes.client.ApiClient, namespace: str, operator: OperatorProcess) -> Jobs:
    return Jobs(api, namespace)


def env_of(pod: Any) -> dict[str, str]:
    return {e.name: e.value for e in pod.spec.containers[0].env if e.value is not None}


def by_name(pods: list[Any]) -> dict[str, Any]:
    return {p.metadata.name: p for p in pods}


def start_running(jobs: Jobs, **overrides: Any) -> dict[str, Any]:
    name = jobs.create(example("ray-train.yaml"), **overrides)
    pods = jobs.wait_pods(name, 3, phase="Running")
    jobs.wait_phase(name, "Running")
    return by_name(pods)


def test_example_creates_head_service_and_workers_on_its_pool(
    jobs: Jobs, cluster: LocalCluster, namespace: str
) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", str(EXAMPLES / "ray-train.yaml"))
    pods = by_name(jobs.wait_pods(NAME, 3, phase="Running"))
    assert sorted(pods) == sorted([HEAD, *WORKERS])
    uid = jobs.get(NAME)["metadata"]["uid"]

    service = jobs.core.read_namespaced_service(HEAD, namespace)
    assert service.spec.cluster_ip == "None" and service.metadata.owner_references[0].uid == uid
    assert {p.name: p.port for p in service.spec.ports} == {"gcs": 6379, "dashboard": 8265, "client": 10001}
    assert service.spec.selector == {"kubetrain.io/job-name": NAME, "kubetrain.io/role": "head"}

    head = pods[HEAD]
    assert head.metadata.labels["kubetrain.io/role"] == "head"
    assert head.spec.containers[0].command == ["python", "-m", "kubetrain_trainer.ray_head"]
    assert "nvidia.com/gpu" not in (head.spec.containers[0].resources.requests or {})
    head_env = env_of(head)
    assert head_env["KUBETRAIN_RAY_HEAD_HOST"] == f"{HEAD}.{namespace}.svc"
    assert head_env["KUBETRAIN_RAY_TRAIN_WORKERS"] == "2" and head_env["KUBETRAIN_RAY_GPUS_PER_TRAIN_WORKER"] == "1"

    for index, worker in enumerate(pods[w] for w in WORKERS):
        assert worker.metadata.labels["kubetrain.io/role"] == "worker"
        assert worker.metadata.labels["kubetrain.io/replica-index"] == str(index)
        assert worker.spec.containers[0].command == ["ray", "start"]
        assert "--num-gpus=1" in worker.spec.containers[0].args
        assert worker.spec.containers[0].resources.limits["nvidia.com/gpu"] == "1"
        assert env_of(worker)["KUBETRAIN_RAY_HEAD_HOST"] == f"{HEAD}.{namespace}.svc"
    for pod in pods.values():
        assert pod.metadata.owner_references[0].uid == uid
        node = jobs.core.read_node(pod.spec.node_name)
        assert node.metadata.labels["kubetrain.io/node-pool"] == "a100-eu"
        assert node.metadata.labels["topology.kubernetes.io/region"] == "eu-west-1"

    status = jobs.wait_phase(NAME, "Running")
    assert status["replicaStatuses"]["head"]["active"] == 1 and status["replicaStatuses"]["worker"]["active"] == 2


def test_the_phase_follows_the_driver_and_takes_its_metrics(jobs: Jobs) -> None:
    start_running(jobs)
    report = {
        "outcome": "Succeeded",
        "reason": "Completed",
        "message": "test accuracy 0.9100",
        "metrics": {"accuracy": 0.91},
    }
    jobs.end_pod(HEAD, "Succeeded", 0, json.dumps(report))
    status = jobs.wait_phase(NAME, "Succeeded")
    assert status["metrics"] == {"accuracy": 0.91}
    succeeded = jobs.condition(NAME, "Succeeded")
    assert succeeded and succeeded["reason"] == "DriverSucceeded" and "test accuracy 0.9100" in succeeded["message"]
    wait_for(lambda: not jobs.pods(NAME, include_terminating=True)[1:], what="the blocking workers cleaned up")


def test_a_dead_worker_is_replaced_without_restarting_the_group(jobs: Jobs) -> None:
    pods = start_running(jobs)
    keep = {pods[HEAD].metadata.uid, pods[WORKERS[0]].metadata.uid}
    jobs.end_pod(WORKERS[1], "Failed", 137)

    def replaced() -> dict[str, Any] | None:
        live = by_name(jobs.pods(NAME))
        new = live.get(WORKERS[1])
        fresh = new is not None and new.metadata.uid != pods[WORKERS[1]].metadata.uid and new.status.phase == "Running"
        return live if fresh and len(live) == 3 else None

    live = wait_for(replaced, what="worker-1 replaced")
    assert {live[HEAD].metadata.uid, live[WORKERS[0]].metadata.uid} == keep, "the head and worker-0 keep running"
    assert live[WORKERS[1]].metadata.labels["kubetrain.io/attempt"] == "0"
    assert jobs.status(NAME)["restarts"] == 0
    jobs.wait_events(NAME, "WorkerReplaced")
    jobs.wait_phase(NAME, "Running")


def test_a_failed_head_restarts_the_group_until_backoff_limit(jobs: Jobs) -> None:
    pods = start_running(jobs, runPolicy={"backoffLimit": 1})
    first = {p.metadata.uid for p in pods.values()}
    jobs.end_pod(HEAD, "Failed", 1, json.dumps({"outcome": "Failed", "reason": "TrainerError", "message": "boom"}))

    def restarted() -> list[Any] | None:
        live = jobs.pods(NAME)
        ok = len(live) == 3 and all(p.metadata.labels["kubetrain.io/attempt"] == "1" for p in live)
        return live if ok else None

    again = wait_for(restarted, what="a new attempt of the head and both workers")
    assert not first & {p.metadata.uid for p in again}, "the head and every worker are replaced"
    assert jobs.status(NAME)["restarts"] == 1
    jobs.wait_phase(NAME, "Running")

    jobs.end_pod(
        HEAD, "Failed", 1, json.dumps({"outcome": "Failed", "reason": "TrainerError", "message": "boom again"})
    )
    status = jobs.wait_phase(NAME, "Failed")
    failed = jobs.condition(NAME, "Failed")
    assert failed and failed["reason"] == "BackoffLimitExceeded" and "boom again" in failed["message"]
    assert status["restarts"] == 1


def test_a_driver_error_that_no_restart_can_fix_fails_the_job_with_it_at_once(jobs: Jobs) -> None:
    start_running(jobs)
    report = {"outcome": "Failed", "reason": "Diverged", "message": "loss is nan at step 12", "metrics": {}}
    jobs.end_pod(HEAD, "Failed", 1, json.dumps(report))
    status = jobs.wait_phase(NAME, "Failed")
    failed = jobs.condition(NAME, "Failed")
    assert failed and failed["reason"] == "Diverged" and "loss is nan at step 12" in failed["message"]
    assert status["restarts"] == 0
    wait_for(lambda: not {p.metadata.name for p in jobs.pods(NAME)} & set(WORKERS), what="the workers stopped")


def test_residency_pins_the_head_and_workers_to_the_allowed_region(
    jobs: Jobs, api: kubernetes.client.ApiClient
) -> None:
    """The cpu pool spans both regions; an eu-only policy keeps every Ray pod in eu-west-1."""
    custom = kubernetes.client.CustomObjectsApi(api)
    body = eu_policy("eu-only", [jobs.ns])
    body["metadata"]["name"] = f"{jobs.ns}-eu-only"
    custom.create_cluster_custom_object(GROUP, VERSION, "dataresidencypolicies", body)
    try:
        overrides = {"runtime": "ray", "workers": 3, "nodePool": "cpu", "resources": {"cpu": "100m", "gpus": 0}}
        manifest = JobBuilder.eu("ray-eu", jobs.ns).merge(**overrides).manifest()
        jobs.custom.create_namespaced_custom_object(GROUP, VERSION, jobs.ns, "trainingjobs", manifest)
        pods = jobs.wait_pods("ray-eu", 4, phase="Running")
        assert sorted(p.metadata.labels["kubetrain.io/role"] for p in pods) == ["head", "worker", "worker", "worker"]
        for pod in pods:
            labels = jobs.core.read_node(pod.spec.node_name).metadata.labels
            assert (labels["kubetrain.io/node-pool"], labels[REGION]) == ("cpu", "eu-west-1"), pod.metadata.name
            [term] = (
                pod.spec.affinity.node_affinity.required_during_scheduling_ignored_during_execution.node_selector_terms
            )
            assert [(e.key, e.operator, e.values) for e in term.match_expressions] == [(REGION, "In", ["eu-west-1"])]
        assert jobs.condition("ray-eu", "ResidencyCompliant")["reason"] == "Compliant"
    finally:
        custom.delete_cluster_custom_object(GROUP, VERSION, "dataresidencypolicies", body["metadata"]["name"])
