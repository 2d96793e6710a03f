"""Kueue admission on the real control plane with a real Kueue (v0.17, built from source and run by
the dev cluster: LocalCluster(kueue=True)). A ClusterQueue holds the 16 GPUs of the h100-us pool
(2 KWOK nodes x 8) through a ResourceFlavor; jobs labelled kueue.x-k8s.io/queue-name wait Queued
(reason WaitingForAdmission) with no pod until Kueue admits their Workload, then run on the
admitted flavour; a finished job frees its quota; a higher-priority job preempts a lower one,
whose pods go without a restart being counted, and which runs again once re-admitted."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest

from kubetrain.devcluster.cluster import LocalCluster
from tests.builders import example
from tests.helpers import admin_client, fresh_namespace, wait_for
from tests.jobs import Jobs
from tests.operator_process import OperatorProcess

pytestmark = pytest.mark.cluster

KUEUE = ("kueue.x-k8s.io", "v1beta2")
WORKERS, GPUS = 2, 4  # 8 GPUs a job: two fit the ClusterQueue's 16, a third waits
TOLERATION = {"key": "kubetrain.io/kueue-test", "operator": "Exists", "effect": "NoSchedule"}


@pytest.fixture(scope="module")
def kueue_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    local = LocalCluster(tmp_path_factory.mktemp("kueue-cluster"), local_node=False, kueue=True)
    try:
        local.start()
        crd_dir = Path(__file__).resolve().parent.parent.parent / "crds"
        local.kubectl("apply", "--server-side", "-f", str(crd_dir))
        local.kubectl("wait", "--for=condition=Established", "--timeout=60s", "-f", str(crd_dir))
        yield local
    finally:
        local.stop()


@pytest.fixture(scope="module")
def kueue_api(kueue_cluster: LocalCluster) -> Iterator[kubernetes.client.ApiClient]:
    with admin_client(kueue_cluster.kubeconfig) as client:
        yield client


@pytest.fixture(scope="module")
def kueue_operator(kueue_cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorProcess]:
    """Started after Kueue: the operator asks discovery once, at start, whether it is there."""
    proc = OperatorProcess(kueue_cluster.kubeconfig, tmp_path_factory.mktemp("kueue-operator") / "operator.log")
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


class Queues:
    """A ResourceFlavor for the h100-us pool, a ClusterQueue of 16 GPUs on it (preempting lower
    priorities), a LocalQueue `team` in the test's namespace, and the priorities `high` and `low`;
    the cluster-scoped ones named for the test and removed after it."""

    def __init__(self, api: kubernetes.client.ApiClient, namespace: str) -> None:
        self.custom = kubernetes.client.CustomObjectsApi(api)
        self.ns = namespace
        self.suffix = uuid.uuid4().hex[:5]
        self.flavor, self.cq = f"h100-{self.suffix}", f"gpus-{self.suffix}"
        self.priorities = {"high": f"high-{self.suffix}", "low": f"low-{self.suffix}"}
        self._cluster(("resourceflavors", self.flavor, {
            "nodeLabels": {"kubetrain.io/node-pool": "h100-us"}, "tolerations": [TOLERATION],
        }))
        self._cluster(("clusterqueues", self.cq, {
            "namespaceSelector": {},
            "preemption": {"withinClusterQueue": "LowerPriority"},
            "resourceGroups": [{
                "coveredResources": ["cpu", "memory", "nvidia.com/gpu"],
                "flavors": [{"name": self.flavor, "resources": [
                    {"name": "cpu", "nominalQuota": "1000"},
                    {"name": "memory", "nominalQuota": "10000Gi"},
                    {"name": "nvidia.com/gpu", "nominalQuota": "16"},
                ]}],
            }],
        }))
        for name, value in (("high", 1000), ("low", 10)):
            self.custom.create_cluster_custom_object(*KUEUE, "workloadpriorityclasses", {
                "apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "WorkloadPriorityClass",
                "metadata": {"name": self.priorities[name]}, "value": value,
            })
        self.custom.create_namespaced_custom_object(*KUEUE, namespace, "localqueues", {
            "apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "LocalQueue",
            "metadata": {"name": "team"}, "spec": {"clusterQueue": self.cq},
        })

    def _cluster(self, item: tuple[str, str, dict[str, Any]]) -> None:
        plural, name, spec = item
        kind = {"resourceflavors": "ResourceFlavor", "clusterqueues": "ClusterQueue"}[plural]
        self.custom.create_cluster_custom_object(*KUEUE, plural, {
            "apiVersion": "kueue.x-k8s.io/v1beta2", "kind": kind, "metadata": {"name": name}, "spec": spec,
        })

    def remove(self) -> None:
        for plural, name in (("clusterqueues", self.cq), ("resourceflavors", self.flavor),
                             *(("workloadpriorityclasses", p) for p in self.priorities.values())):
            self.custom.delete_cluster_custom_object(*KUEUE, plural, name)

    def workload(self, job: str) -> dict[str, Any]:
        return dict(self.custom.get_namespaced_custom_object(*KUEUE, self.ns, "workloads", f"{job}-kueue"))

    def job(self, name: str, priority: str | None = None) -> dict[str, Any]:
        manifest = copy.deepcopy(example("pytorch-ddp.yaml"))
        labels = {"kueue.x-k8s.io/queue-name": "team"}
        if priority:
            labels["kueue.x-k8s.io/priority-class"] = self.priorities[priority]
        manifest["metadata"].update(name=name, labels=labels)
        manifest["spec"].update(workers=WORKERS, nodePool="h100-us", resources={"gpus": GPUS, "cpu": "4",
                                                                               "memory": "16Gi"})
        return manifest


@pytest.fixture
def queues(kueue_api: kubernetes.client.ApiClient, kueue_operator: OperatorProcess,
           request: pytest.FixtureRequest) -> Iterator[tuple[Jobs, Queues]]:
    with fresh_namespace(kueue_api, request.node.name) as ns:
        found = Queues(kueue_api, ns)
        jobs = Jobs(kueue_api, ns)
        try:
            yield jobs, found
        finally:
            # The pool's nodes are shared by the tests: the next one starts with all 16 GPUs free.
            core = kubernetes.client.CoreV1Api(kueue_api)
            core.delete_collection_namespaced_pod(ns, grace_period_seconds=0)
            wait_for(lambda: not core.list_namespaced_pod(ns).items or None, timeout=60, what=f"no pod left in {ns}")
            found.remove()


def running(jobs: Jobs, names: list[str]) -> list[str]:
    return [n for n in names if jobs.status(n).get("phase") == "Running"]


def finish(jobs: Jobs, name: str) -> None:
    for pod in jobs.pods(name):
        jobs.end_pod(pod.metadata.name, "Succeeded", exit_code=0)
    jobs.wait_phase(name, "Succeeded")


def test_two_of_three_8_gpu_jobs_run_on_16_gpus_and_the_third_is_admitted_when_one_finishes(
    queues: tuple[Jobs, Queues],
) -> None:
    jobs, q = queues
    names = [jobs.create(q.job(n)) for n in ("first", "second", "third")]

    wait_for(lambda: len(running(jobs, names)) == 2 or None, timeout=120, what="two jobs Running")
    [waiting] = [n for n in names if n not in running(jobs, names)]
    status = jobs.wait_phase(waiting, "Queued")
    queued = next(c for c in status["conditions"] if c["type"] == "Queued")
    assert queued["reason"] == "WaitingForAdmission" and "LocalQueue team" in queued["message"]
    assert jobs.pods(waiting) == []
    for name in running(jobs, names):
        for pod in jobs.pods(name):
            assert pod.spec.node_selector["kubetrain.io/node-pool"] == "h100-us"
            assert any(t.key == TOLERATION["key"] for t in pod.spec.tolerations or [])
    admitted = q.workload(running(jobs, names)[0])
    assert admitted["status"]["admission"]["clusterQueue"] == q.cq
    assert [ps["count"] for ps in admitted["spec"]["podSets"]] == [WORKERS]

    done = running(jobs, names)[0]
    finish(jobs, done)
    wait_for(lambda: any(c["type"] == "Finished" and c["status"] == "True"
                         for c in q.workload(done)["status"]["conditions"]) or None,
             timeout=30, what=f"Workload of {done} Finished")
    jobs.wait_pods(waiting, WORKERS, phase="Running", timeout=90)
    jobs.wait_phase(waiting, "Running")
    reasons = {e.reason for e in jobs.events(waiting)}
    assert "Queued" in reasons


def test_a_higher_priority_job_preempts_a_lower_one_which_runs_again_without_a_restart(
    queues: tuple[Jobs, Queues],
) -> None:
    jobs, q = queues
    lows = [jobs.create(q.job(n, "low")) for n in ("low-a", "low-b")]
    for name in lows:
        jobs.wait_pods(name, WORKERS, phase="Running", timeout=120)

    high = jobs.create(q.job("urgent", "high"))

    def evicted() -> str | None:
        return next((n for n in lows if jobs.status(n).get("phase") == "Queued"), None)

    victim = wait_for(evicted, timeout=90, what="a low-priority job evicted") or ""
    jobs.wait_pods(high, WORKERS, phase="Running", timeout=90)
    status = jobs.status(victim)
    assert status.get("restarts", 0) == 0 and status.get("attempt") == 1
    assert jobs.pods(victim) == []
    assert "Evicted" in {e.reason for e in jobs.events(victim)}

    finish(jobs, high)
    pods = jobs.wait_pods(victim, WORKERS, phase="Running", timeout=90)
    assert all(p.metadata.labels["kubetrain.io/attempt"] == "1" for p in pods)
    finish(jobs, victim)
    assert jobs.status(victim).get("restarts", 0) == 0


def test_an_elastic_job_is_admitted_partially_and_runs_with_the_workers_kueue_admitted(
    queues: tuple[Jobs, Queues],
) -> None:
    """8 of the 16 GPUs are taken; an elastic job of 4 workers x 4 GPUs (at least 2) does not fit
    whole, so Kueue admits 2 of its workers (partial admission) and the job runs with those 2."""
    jobs, q = queues
    fixed = jobs.create(q.job("fixed"))
    jobs.wait_phase(fixed, "Running", timeout=120)
    manifest = q.job("elastic")
    manifest["spec"].update(workers=4, elastic={"minWorkers": 2})
    name = jobs.create(manifest)

    status = jobs.wait_phase(name, "Running", timeout=120)
    assert status["elastic"]["workers"] == 2, status
    workload = q.workload(name)
    assert [(ps["count"], ps["minCount"]) for ps in workload["spec"]["podSets"]] == [(4, 2)]
    assert [a["count"] for a in workload["status"]["admission"]["podSetAssignments"]] == [2]
    assert [p.metadata.name for p in jobs.pods(name)] == [f"{name}-worker-0", f"{name}-worker-1"]
