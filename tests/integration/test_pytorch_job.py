"""TrainingJob on the real control plane, reconciled by the operator running as a subprocess:
placement, env, all-or-nothing start, group restarts, backoff, deadline, suspend, TTL, deletion,
operator restarts."""

from __future__ import annotations

from typing import Any

import kubernetes
import pytest
import yaml

from kubetrain.devcluster.cluster import LocalCluster
from tests.helpers import wait_for
from tests.jobs import EXAMPLES, Jobs, example
from tests.operator_process import OperatorProcess

pytestmark = pytest.mark.cluster


@pytest.fixture
def jobs(api: kubernetes.client.ApiClient, namespace: str, operator: OperatorProcess) -> Jobs:
    return Jobs(api, namespace)


def env_of(pod: Any) -> dict[str, str]:
    return {e.name: e.value for e in pod.spec.containers[0].env if e.value is not None}


def start_running(jobs: Jobs, **overrides: Any) -> tuple[str, list[Any]]:
    name = jobs.create(example("pytorch-ddp.yaml"), **overrides)
    pods = jobs.wait_pods(name, 2, phase="Running")
    jobs.wait_phase(name, "Running")
    return name, pods


def test_example_runs_on_its_pool_and_succeeds(jobs: Jobs, cluster: LocalCluster, namespace: str) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", str(EXAMPLES / "pytorch-ddp.yaml"))
    name = "pytorch-ddp"
    pods = jobs.wait_pods(name, 2, phase="Running")
    job = jobs.get(name)

    service = jobs.core.read_namespaced_service(name, namespace)
    assert service.spec.cluster_ip == "None"
    assert service.metadata.owner_references[0].uid == job["metadata"]["uid"]

    for index, pod in enumerate(pods):
        assert pod.metadata.name == f"{name}-worker-{index}"
        assert pod.metadata.owner_references[0].uid == job["metadata"]["uid"]
        assert pod.metadata.owner_references[0].controller is True
        assert pod.metadata.labels["kubetrain.io/job-name"] == name
        assert pod.metadata.labels["kubetrain.io/replica-index"] == str(index)
        env = env_of(pod)
        assert env["MASTER_ADDR"] == f"{name}-worker-0.{name}"
        assert env["MASTER_PORT"] == "29500"
        assert env["WORLD_SIZE"] == "2"
        assert env["NODE_RANK"] == str(index)
        assert env["RANK"] == str(index)
        assert env["NPROC_PER_NODE"] == "1"
        resources = pod.spec.containers[0].resources
        assert resources.limits["nvidia.com/gpu"] == "1"
        assert resources.requests["nvidia.com/gpu"] == "1"
        assert pod.spec.node_selector["kubetrain.io/node-pool"] == "a100-eu"
        assert any(t.key == "nvidia.com/gpu" for t in pod.spec.tolerations)
        node = jobs.core.read_node(pod.spec.node_name)
        assert node.metadata.labels["kubetrain.io/node-pool"] == "a100-eu"

    status = jobs.wait_phase(name, "Running")
    assert status["replicaStatuses"]["worker"]["active"] == 2
    assert status["startTime"]

    for pod in pods:
        jobs.end_pod(pod.metadata.name, "Succeeded", 0)
    status = jobs.wait_phase(name, "Succeeded")
    assert status["completionTime"]
    assert status["restarts"] == 0
    succeeded = jobs.condition(name, "Succeeded")
    assert succeeded and succeeded["status"] == "True"
    reasons = {e.reason for e in jobs.events(name)}
    assert {"Running", "Succeeded"} <= reasons, reasons
    listing = cluster.kubectl("get", "tj", "-n", namespace).stdout
    assert "Succeeded" in listing and "pytorch" in listing


def test_reapplying_the_same_manifest_changes_nothing(jobs: Jobs, cluster: LocalCluster, namespace: str) -> None:
    path = str(EXAMPLES / "pytorch-ddp.yaml")
    cluster.kubectl("apply", "-n", namespace, "-f", path)
    jobs.wait_pods("pytorch-ddp", 2, phase="Running")
    generation = jobs.get("pytorch-ddp")["metadata"]["generation"]
    out = cluster.kubectl("apply", "-n", namespace, "-f", path).stdout
    assert "unchanged" in out
    assert jobs.get("pytorch-ddp")["metadata"]["generation"] == generation
    assert cluster.kubectl("diff", "-n", namespace, "-f", path, check=False).returncode == 0


def test_worker_failure_restarts_the_whole_group_until_backoff_limit(jobs: Jobs) -> None:
    name, pods = start_running(jobs, runPolicy={"backoffLimit": 1})
    first_uids = {p.metadata.uid for p in pods}
    jobs.end_pod(pods[1].metadata.name, "Failed", 137)

    def restarted() -> list[Any] | None:
        live = jobs.pods(name)
        ok = len(live) == 2 and all(p.metadata.labels["kubetrain.io/attempt"] == "1" for p in live)
        return live if ok else None

    new_pods = wait_for(restarted, what="a new attempt of both workers")
    assert not first_uids & {p.metadata.uid for p in new_pods}, "every worker is replaced, not just the failed one"
    assert jobs.status(name)["restarts"] == 1
    jobs.wait_phase(name, "Running")

    jobs.end_pod(new_pods[0].metadata.name, "Failed", 1)
    status = jobs.wait_phase(name, "Failed")
    failed = jobs.condition(name, "Failed")
    assert failed and failed["reason"] == "BackoffLimitExceeded", failed
    assert status["restarts"] == 1
    wait_for(lambda: not [p for p in jobs.pods(name) if p.status.phase == "Running"], what="running pods cleaned")


def test_deleted_pod_counts_as_a_failure_and_is_recovered(jobs: Jobs) -> None:
    name, pods = start_running(jobs)
    jobs.core.delete_namespaced_pod(pods[0].metadata.name, jobs.ns)
    wait_for(lambda: jobs.status(name).get("restarts") == 1, what="restarts == 1")
    new_pods = jobs.wait_pods(name, 2, phase="Running")
    assert all(p.metadata.labels["kubetrain.io/attempt"] == "1" for p in new_pods)
    jobs.wait_phase(name, "Running")


def test_operator_restart_mid_job_creates_no_duplicates(jobs: Jobs, operator: OperatorProcess) -> None:
    name, pods = start_running(jobs)
    uids = {p.metadata.uid for p in pods}
    operator.stop(kill=True)
    operator.start()
    jobs.end_pod(pods[0].metadata.name, "Succeeded", 0)
    jobs.end_pod(pods[1].metadata.name, "Succeeded", 0)
    jobs.wait_phase(name, "Succeeded")
    assert {p.metadata.uid for p in jobs.pods(name)} == uids
    assert jobs.status(name)["restarts"] == 0


def test_suspend_deletes_pods_and_resume_starts_again(jobs: Jobs) -> None:
    name, _ = start_running(jobs)
    jobs.patch_spec(name, {"runPolicy": {"suspend": True}})
    jobs.wait_phase(name, "Suspended")
    wait_for(lambda: not jobs.pods(name, include_terminating=True), what="pods deleted on suspend")
    assert jobs.exists(name)
    jobs.patch_spec(name, {"runPolicy": {"suspend": False}})
    jobs.wait_pods(name, 2, phase="Running")
    jobs.wait_phase(name, "Running")
    assert jobs.status(name)["restarts"] == 0, "suspension is not a failure"


def test_active_deadline_fails_the_job(jobs: Jobs) -> None:
    name, _ = start_running(jobs, runPolicy={"activeDeadlineSeconds": 3})
    jobs.wait_phase(name, "Failed", timeout=30)
    failed = jobs.condition(name, "Failed")
    assert failed and failed["reason"] == "DeadlineExceeded", failed
    wait_for(lambda: not jobs.pods(name), what="pods deleted after the deadline")


def test_finished_job_is_deleted_after_ttl(jobs: Jobs) -> None:
    name, pods = start_running(jobs, runPolicy={"ttlSecondsAfterFinished": 2})
    for pod in pods:
        jobs.end_pod(pod.metadata.name, "Succeeded", 0)
    jobs.wait_phase(name, "Succeeded")
    wait_for(lambda: not jobs.exists(name), timeout=30, what="the job to be deleted after its TTL")


def test_deleting_the_job_cascades_to_pods_and_service(jobs: Jobs) -> None:
    name, _ = start_running(jobs)
    jobs.delete(name)
    wait_for(lambda: not jobs.pods(name, include_terminating=True), timeout=60, what="pods garbage-collected")
    wait_for(
        lambda: not jobs.core.list_namespaced_service(jobs.ns, label_selector=f"kubetrain.io/job-name={name}").items,
        timeout=60,
        what="service garbage-collected",
    )


def test_unknown_node_pool_fails_with_invalid_spec_and_no_pods(jobs: Jobs) -> None:
    name = jobs.create(example("pytorch-ddp.yaml"), nodePool="does-not-exist")
    jobs.wait_phase(name, "Failed")
    failed = jobs.condition(name, "Failed")
    assert failed and failed["reason"] == "InvalidSpec"
    assert "spec.nodePool" in failed["message"] and "a100-eu" in failed["message"]
    assert not jobs.pods(name, include_terminating=True)


def test_too_many_gpus_per_worker_fails_with_the_fix(jobs: Jobs) -> None:
    manifest = example("pytorch-ddp.yaml")
    manifest["spec"]["resources"]["gpus"] = 9
    name = jobs.create(manifest)
    jobs.wait_phase(name, "Failed")
    failed = jobs.condition(name, "Failed")
    assert failed and failed["reason"] == "InvalidSpec"
    assert "spec.resources.gpus" in failed["message"] and "8" in failed["message"]
    assert not jobs.pods(name, include_terminating=True)


@pytest.mark.parametrize(
    ("override", "field"),
    [({"workers": -1}, "spec.workers"), ({"runtime": "tensorflow"}, "spec.runtime")],
    ids=["negative-workers", "unknown-runtime"],
)
def test_crd_validation_refuses_bad_specs(
    cluster: LocalCluster, namespace: str, override: dict[str, Any], field: str
) -> None:
    manifest = example("pytorch-ddp.yaml")
    manifest["spec"].update(override)
    result = cluster.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(manifest), check=False)
    assert result.returncode != 0
    assert field in result.stderr, result.stderr
