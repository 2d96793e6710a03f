"""Kueue admission of a labelled job (render/kueue.py, policy/kueue.py, plan/kueue.py): the Workload
that describes the job, Queued with no pod until Kueue admits it, the pods placed on the admitted
flavour, an eviction that deletes the pods without counting a restart and then releases the quota,
and Finished reported at the end."""

from __future__ import annotations

from typing import Any

from kubetrain.api.events import EventType
from kubetrain.api.status import Phase, Reason
from kubetrain.plan.draft import Plan
from kubetrain.plan.job import plan
from kubetrain.plan.kueue import KUEUE_RECHECK_SECONDS
from kubetrain.policy.kueue import KueueFacts
from tests.builders import JobBuilder
from tests.unit.test_plan_rules import CATALOGUE, DDP, NOW, SETTINGS, children, cond, observe, raw_pod

QUEUED = DDP.metadata(labels={"kueue.x-k8s.io/queue-name": "team-a", "kueue.x-k8s.io/priority-class": "high"})
FLAVOR = {"nodeLabels": {"kubetrain.io/pool": "a100-eu"},
          "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]}


def workload(*conditions: dict[str, Any], admission: bool = False) -> dict[str, Any]:
    status: dict[str, Any] = {"conditions": list(conditions)}
    if admission:
        status["admission"] = {"clusterQueue": "gpus", "podSetAssignments": [
            {"name": "worker", "flavors": {"nvidia.com/gpu": "a100", "cpu": "a100"}, "count": 2}]}
    return {"metadata": {"name": "pytorch-ddp-kueue", "generation": 1}, "spec": {}, "status": status}


ADMITTED = KueueFacts(workload=workload(cond("QuotaReserved"), cond("Admitted"), admission=True),
                      flavors={"a100": FLAVOR})
PREEMPTED = workload(cond("QuotaReserved"), cond("Admitted", False, "NoReservation"),
                     cond("Evicted", reason="Preempted") | {"message": "Preempted to accommodate a workload"},
                     admission=True)


def planned(status: dict[str, Any], facts: KueueFacts | None, *pods: dict[str, Any]) -> Plan:
    job = QUEUED.status(status).obj()
    return plan(job, observe(*pods, service=bool(pods)), children(job), CATALOGUE, SETTINGS, NOW, kueue=facts)


def test_a_labelled_job_gets_a_workload_and_waits_queued_with_no_pod() -> None:
    result = planned({}, KueueFacts(priority=1000))

    assert [o["kind"] for o in result.create] == ["Workload"]
    wl = result.create[0]
    assert wl["apiVersion"] == "kueue.x-k8s.io/v1beta2" and wl["metadata"]["name"] == "pytorch-ddp-kueue"
    assert wl["metadata"]["ownerReferences"][0]["kind"] == "TrainingJob"
    assert wl["spec"]["queueName"] == "team-a"
    assert wl["spec"]["priorityClassRef"] == {"group": "kueue.x-k8s.io", "kind": "WorkloadPriorityClass",
                                              "name": "high"}
    assert wl["spec"]["priority"] == 1000
    [pod_set] = wl["spec"]["podSets"]
    assert pod_set["name"] == "worker" and pod_set["count"] == 2
    assert pod_set["template"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert result.status.phase == Phase.QUEUED and result.status.start_time is None
    queued = next(c for c in result.status.conditions if c.type == "Queued")
    assert queued.reason == Reason.WAITING_FOR_ADMISSION and "LocalQueue team-a" in queued.message
    assert [e.type for e in result.events] == [EventType.NORMAL]
    assert result.requeue_after == KUEUE_RECHECK_SECONDS


def test_a_pending_workload_keeps_the_job_queued_with_kueues_reason() -> None:
    pending = workload(cond("QuotaReserved", False, "Pending") | {"message": "insufficient quota for nvidia.com/gpu"})
    result = planned(planned({}, KueueFacts()).status.to_k8s(), KueueFacts(workload=pending))

    assert result.create == [] and result.status.phase == Phase.QUEUED
    queued = next(c for c in result.status.conditions if c.type == "Queued")
    assert "insufficient quota for nvidia.com/gpu" in queued.message


def test_an_admitted_job_creates_its_pods_on_the_admitted_flavour() -> None:
    result = planned(planned({}, KueueFacts()).status.to_k8s(), ADMITTED)

    pods = [o for o in result.create if o["kind"] == "Pod"]
    assert len(pods) == 2
    for pod in pods:
        assert pod["spec"]["nodeSelector"]["kubetrain.io/pool"] == "a100-eu"
        assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["spec"]["tolerations"]
    queued = next(c for c in result.status.conditions if c.type == "Queued")
    assert queued.status == "False" and queued.reason == Reason.ADMITTED and "ClusterQueue gpus" in queued.message
    assert result.workload_status is None


def test_an_unlabelled_job_ignores_kueue() -> None:
    job = DDP.status({}).obj()
    result = plan(job, observe(service=False), children(job), CATALOGUE, SETTINGS, NOW, kueue=None)
    assert [o["kind"] for o in result.create].count("Pod") == 2


def test_an_evicted_job_loses_its_pods_without_a_restart_then_releases_its_quota() -> None:
    running = {"restarts": 1, "attempt": 1, "conditions": [cond("Created"), cond("Running")]}
    pods = (raw_pod(0, attempt=1), raw_pod(1, attempt=1))
    result = planned(running, KueueFacts(workload=PREEMPTED), *pods)

    assert sorted(result.delete_pods) == sorted(p["metadata"]["name"] for p in pods)
    assert result.status.restarts == 1 and result.status.attempt == 2
    assert result.status.phase == Phase.QUEUED and result.create == []
    assert any(e.reason == Reason.EVICTED and e.type == EventType.NORMAL for e in result.events)
    assert result.workload_status is None  # pods still there: the quota is kept until they are gone

    gone = planned(result.status.to_k8s(), KueueFacts(workload=PREEMPTED))
    assert gone.status.restarts == 1 and gone.status.attempt == 2 and gone.create == []
    assert gone.workload_status is not None
    released = gone.workload_status["status"]
    assert released["admission"] is None
    by_type = {c["type"]: c for c in released["conditions"]}
    assert by_type["QuotaReserved"]["status"] == "False" and by_type["Admitted"]["status"] == "False"
    assert by_type["Requeued"]["status"] == "True" and by_type["Evicted"]["status"] == "True"


def test_an_eviction_seen_again_before_its_pods_deletions_arrive_starts_no_further_attempt() -> None:
    """The reconcile after an eviction may still see the evicted attempt's pods alive (the watch
    has not delivered their deletion yet): they are deleted again, and the attempt stays."""
    running = {"restarts": 0, "attempt": 1, "conditions": [cond("Created"), cond("Running")]}
    pods = (raw_pod(0, attempt=1), raw_pod(1, attempt=1))
    evicted = planned(running, KueueFacts(workload=PREEMPTED), *pods)
    assert evicted.status.attempt == 2

    again = planned(evicted.status.to_k8s(), KueueFacts(workload=PREEMPTED), *pods)

    assert again.status.attempt == 2 and again.status.restarts == 0
    assert sorted(again.delete_pods) == sorted(p["metadata"]["name"] for p in pods)
    assert not any(e.reason == Reason.EVICTED for e in again.events)
    assert again.workload_status is None  # the quota waits until those pods are gone
    assert again.status.phase == Phase.QUEUED and again.create == []


def test_a_finished_job_marks_its_workload_finished_once() -> None:
    done = {"conditions": [cond("Succeeded", reason="AllWorkersSucceeded")]}
    result = planned(done, ADMITTED)
    assert result.workload_status is not None
    finished = [c for c in result.workload_status["status"]["conditions"] if c["type"] == "Finished"]
    assert finished[0]["status"] == "True" and finished[0]["reason"] == "Succeeded"
    assert {c["type"] for c in result.workload_status["status"]["conditions"]} >= {"QuotaReserved", "Admitted"}

    marked = KueueFacts(workload=workload(cond("Admitted"), cond("Finished"), admission=True))
    assert planned(done, marked).workload_status is None


def test_a_job_naming_a_missing_priority_class_waits_without_a_workload() -> None:
    result = planned({}, KueueFacts())

    assert result.create == [] and result.status.phase == Phase.QUEUED
    queued = next(c for c in result.status.conditions if c.type == "Queued")
    assert "WorkloadPriorityClass high" in queued.message and "does not exist" in queued.message


def test_a_job_without_a_priority_class_gets_a_workload_without_priority() -> None:
    job = DDP.metadata(labels={"kueue.x-k8s.io/queue-name": "team-a"}).status({}).obj()
    result = plan(job, observe(service=False), children(job), CATALOGUE, SETTINGS, NOW, kueue=KueueFacts())
    [wl] = result.create
    assert "priorityClassRef" not in wl["spec"] and "priority" not in wl["spec"]


def test_a_ray_job_is_one_workload_with_a_head_and_a_worker_pod_set() -> None:
    job = (JobBuilder.example("ray-train.yaml").placed("ns").metadata(labels={"kueue.x-k8s.io/queue-name": "team-a"})
           .status({}).obj())
    result = plan(job, observe(service=False), children(job), CATALOGUE, SETTINGS, NOW, kueue=KueueFacts())
    [wl] = result.create
    assert {ps["name"]: ps["count"] for ps in wl["spec"]["podSets"]} == {"head": 1, "worker": job.spec.workers}
