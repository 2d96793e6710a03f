"""Kueue admission on the real control plane with a real Kueue (v0.17, built from source and run by
the dev cluster: LocalCluster(kueue=True)). A ClusterQueue holds the 16 GPUs of the h100-us pool
(2 KWOK nodes x 8) through a ResourceFlavor; jobs labelled kueue.x-k8s.io/queue-name wait Queued
(reason WaitingForAdmission) with no pod until Kueue admits their Workload, then run on the
admitted flavour; a finished job frees its quota. Preemption is tested with real training on the
executing `local` node, under a ClusterQueue of its own: a higher-priority job preempts a lower
one, whose trainer checkpoints the step it is at on SIGTERM; no restart is counted, and once
re-admitted it resumes from that checkpoint and finishes."""

from __future__ import annotations

import contextlib
import copy
import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kubernetes
import pytest

from kubetrain.devcluster.cluster import LocalCluster
from tests.builders import example, merge
from tests.helpers import admin_client, fresh_namespace, wait_for
from tests.jobs import Jobs
from tests.local_training import ACCURACY_BAR, wait_succeeded_while_alive
from tests.operator_process import OperatorProcess

pytestmark = pytest.mark.cluster

KUEUE = ("kueue.x-k8s.io", "v1beta2")
WORKERS, GPUS = 2, 4  # 8 GPUs a job: two fit the ClusterQueue's 16, a third waits
TOLERATION = {"key": "kubetrain.io/kueue-test", "operator": "Exists", "effect": "NoSchedule"}


@dataclass(frozen=True)
class Pool:
    """A node pool as Kueue sees it: the ResourceFlavor's node labels and tolerations, and the
    ClusterQueue's quota on it."""

    name: str
    quota: dict[str, str]
    tolerations: list[dict[str, str]]


GPU_POOL = Pool("h100-us", {"cpu": "1000", "memory": "10000Gi", "nvidia.com/gpu": "16"}, [TOLERATION])
# The executing node: room for one job of 2 workers x 1 CPU at a time, so a second one preempts.
LOCAL_POOL = Pool("local", {"cpu": "2", "memory": "8Gi"}, [])


@pytest.fixture(scope="module")
def kueue_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    local = LocalCluster(tmp_path_factory.mktemp("kueue-cluster"), kueue=True)
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
    """A ResourceFlavor for the pool, a ClusterQueue of the pool's quota on it (preempting lower
    priorities), a LocalQueue `team` in the test's namespace, and the priorities `high` and `low`;
    the cluster-scoped ones named for the test and removed after it."""

    def __init__(self, api: kubernetes.client.ApiClient, namespace: str, pool: Pool = GPU_POOL) -> None:
        self.custom = kubernetes.client.CustomObjectsApi(api)
        self.ns = namespace
        self.suffix = uuid.uuid4().hex[:5]
        self.flavor, self.cq = f"{pool.name}-{self.suffix}", f"queue-{self.suffix}"
        self.priorities = {"high": f"high-{self.suffix}", "low": f"low-{self.suffix}"}
        self._cluster(("resourceflavors", self.flavor, {
            "nodeLabels": {"kubetrain.io/node-pool": pool.name}, "tolerations": pool.tolerations,
        }))
        self._cluster(("clusterqueues", self.cq, {
            "namespaceSelector": {},
            "preemption": {"withinClusterQueue": "LowerPriority"},
            "resourceGroups": [{
                "coveredResources": list(pool.quota),
                "flavors": [{"name": self.flavor, "resources": [
                    {"name": resource, "nominalQuota": quota} for resource, quota in pool.quota.items()
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

    def labelled(self, manifest: dict[str, Any], name: str, priority: str | None = None) -> dict[str, Any]:
        labels = {"kueue.x-k8s.io/queue-name": "team"}
        if priority:
            labels["kueue.x-k8s.io/priority-class"] = self.priorities[priority]
        manifest = copy.deepcopy(manifest)
        manifest["metadata"].update(name=name, labels=labels)
        return manifest

    def job(self, name: str, priority: str | None = None) -> dict[str, Any]:
        """An 8-GPU job on the h100-us pool (KWOK: its pods run until the test ends them)."""
        manifest = self.labelled(example("pytorch-ddp.yaml"), name, priority)
        manifest["spec"].update(workers=WORKERS, nodePool="h100-us", resources={"gpus": GPUS, "cpu": "4",
                                                                               "memory": "16Gi"})
        return manifest


@contextlib.contextmanager
def queues_on(api: kubernetes.client.ApiClient, name: str, pool: Pool) -> Iterator[tuple[Jobs, Queues]]:
    with fresh_namespace(api, name) as ns:
        found = Queues(api, ns, pool)
        jobs = Jobs(api, ns)
        try:
            yield jobs, found
        finally:
            # The pool's nodes are shared by the tests: the next one starts with all of it free.
            core = kubernetes.client.CoreV1Api(api)
            core.delete_collection_namespaced_pod(ns, grace_period_seconds=0)
            wait_for(lambda: not core.list_namespaced_pod(ns).items or None, timeout=60, what=f"no pod left in {ns}")
            found.remove()


@pytest.fixture
def queues(kueue_api: kubernetes.client.ApiClient, kueue_operator: OperatorProcess,
           request: pytest.FixtureRequest) -> Iterator[tuple[Jobs, Queues]]:
    with queues_on(kueue_api, request.node.name, GPU_POOL) as found:
        yield found


@pytest.fixture
def local_queues(kueue_api: kubernetes.client.ApiClient, kueue_operator: OperatorProcess,
                 request: pytest.FixtureRequest) -> Iterator[tuple[Jobs, Queues]]:
    with queues_on(kueue_api, request.node.name, LOCAL_POOL) as found:
        yield found


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


def last_checkpoint_step(status: dict[str, Any]) -> int:
    return int(status.get("lastCheckpoint", {}).get("step", 0))


@pytest.mark.training
def test_a_preempted_job_checkpoints_on_sigterm_and_resumes_there_without_a_restart(
    local_queues: tuple[Jobs, Queues], kueue_cluster: LocalCluster, tmp_path: Path,
) -> None:
    """Real training on the executing node. The low-priority job checkpoints only on SIGTERM
    (checkpointEverySteps is out of reach), so the checkpoint it resumes from is the preemption's."""
    jobs, q = local_queues
    data = tmp_path / "tabular.csv"
    subprocess.run([sys.executable, "-m", "kubetrain_trainer.datagen", "tabular", "--out", str(data),
                    "--rows", "2000", "--seed", "0"], check=True)

    def local_job(name: str, priority: str, epochs: int) -> dict[str, Any]:
        return merge(q.labelled(example("pytorch-ddp-local.yaml"), name, priority), {"spec": {
            "dataset": {"uri": f"file://{data}"}, "output": {"uri": f"file://{tmp_path / name}"},
            "task": {"epochs": epochs, "checkpointEverySteps": 100_000},
        }})

    low = jobs.create(local_job("low", "low", epochs=16))
    wait_for(lambda: jobs.status(low).get("progress", {}).get("step", 0) >= 20 or None, timeout=300,
             what=f"{low} training")
    high = jobs.create(local_job("urgent", "high", epochs=2))

    queued = jobs.wait_phase(low, "Queued", timeout=90)
    assert queued.get("restarts", 0) == 0 and queued.get("attempt") == 1, queued
    assert "Evicted" in {e.reason for e in jobs.events(low)}
    # The trainer's checkpoint of the step it stopped at, reported before its pods went.
    stopped = wait_for(lambda: last_checkpoint_step(jobs.status(low)) or None, timeout=60,
                       what=f"{low}'s SIGTERM checkpoint in status.lastCheckpoint")
    total = jobs.status(low)["progress"]["totalSteps"]
    assert 20 <= stopped < total

    pod_logs = kueue_cluster.state_dir / "localnode" / "pods"
    wait_succeeded_while_alive(jobs, high, pod_logs)
    final = wait_succeeded_while_alive(jobs, low, pod_logs)
    assert final.get("restarts", 0) == 0 and final["attempt"] == 1, final
    assert final["metrics"]["accuracy"] >= ACCURACY_BAR
    card = json.loads((tmp_path / low / "model-card.json").read_text())
    assert card["training"]["resumedFromStep"] == stopped
    assert card["training"]["steps"] == total


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
