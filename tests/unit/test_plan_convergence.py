"""plan() as the controller uses it, against a simulated cluster: the same input gives the same
plan, an applied plan leaves nothing more to do, and a partly applied one converges without
counting a restart twice."""

from __future__ import annotations

import copy
from datetime import datetime, timedelta, timezone
from functools import partial
from typing import Any

from kubetrain.api import TrainingJob, default_catalogue
from kubetrain.plan import Observed, Plan, plan, status_patch
from kubetrain.plan.decision import PlanInputs, plan_job
from kubetrain.plan.residency import RECHECK_SECONDS
from kubetrain.policy.residency import ResidencyFacts
from kubetrain.render import RenderSettings
from kubetrain.render.job import render_children
from tests.builders import JobBuilder

CATALOGUE = default_catalogue()
SETTINGS = RenderSettings(default_image="trainer:test")
START = datetime(2025, 1, 1, 12, 0, 0, tzinfo=timezone.utc)


class Cluster:
    """The job's children, and what each plan does to them: creations appear Pending, deletions
    leave a terminating pod that disappears on `settle`, status is written by merge patch."""

    def __init__(self, **spec: Any) -> None:
        self.raw_job = JobBuilder.example("pytorch-ddp.yaml").placed("ns").spec(**spec).manifest()
        self.pods: dict[str, dict[str, Any]] = {}
        self.services: dict[str, dict[str, Any]] = {}
        self.now = START
        self.events: list[tuple[str, str]] = []

    @property
    def job(self) -> TrainingJob:
        return TrainingJob.model_validate(self.raw_job)

    def observed(self) -> Observed:
        return Observed.from_k8s(list(self.pods.values()), list(self.services.values()))

    def plan(self) -> Plan:
        job = self.job
        return plan(
            job, self.observed(), partial(render_children, job, CATALOGUE, SETTINGS), CATALOGUE, SETTINGS, self.now
        )

    def apply(self, result: Plan, write_status: bool = True, act: bool = True) -> None:
        if write_status:
            patch = status_patch(self.raw_job.get("status"), result.status)
            status = {**(self.raw_job.get("status") or {}), **patch}
            self.raw_job["status"] = {k: v for k, v in status.items() if v is not None}
        if not act:
            return
        for obj in result.create:
            if obj["kind"] not in ("Pod", "Service"):
                continue  # the trainer's access objects are not observed by the planner
            store = self.pods if obj["kind"] == "Pod" else self.services
            name = obj["metadata"]["name"]
            if name not in store:
                store[name] = copy.deepcopy(obj) | {"status": {"phase": "Pending"}}
        for name in result.delete_pods:
            self.pods[name]["metadata"]["deletionTimestamp"] = self.now.isoformat()
        self.events += [(e.type, e.reason) for e in result.events]

    def reconcile(self) -> Plan:
        result = self.plan()
        self.apply(result)
        return result

    def settle(self) -> None:
        """Terminating pods go away."""
        self.pods = {n: p for n, p in self.pods.items() if "deletionTimestamp" not in p["metadata"]}

    def converge(self, limit: int = 6) -> None:
        for _ in range(limit):
            result = self.reconcile()
            self.settle()
            if not result.create and not result.delete_pods:
                self.assert_quiescent()
                return
        raise AssertionError("plan did not converge")

    def assert_quiescent(self) -> None:
        first, second = self.plan(), self.plan()
        assert first == second, "plan is a function of its inputs"
        assert first.create == [] and first.delete_pods == [] and first.events == []
        assert status_patch(self.raw_job.get("status"), first.status) == {}, "nothing left to write"

    def set_phase(self, phase: str, index: int | None = None, **terminated: Any) -> None:
        for pod in self.pods.values():
            if index is None or pod["metadata"]["labels"]["kubetrain.io/replica-index"] == str(index):
                state = (
                    {"terminated": {"exitCode": 0, **terminated}}
                    if phase in ("Succeeded", "Failed")
                    else {"running": {}}
                )
                pod["status"] = {
                    "phase": phase,
                    "containerStatuses": [{"name": "trainer", "ready": phase == "Running", "state": state}],
                }

    def attempts(self) -> set[str]:
        return {p["metadata"]["labels"]["kubetrain.io/attempt"] for p in self.pods.values()}

    @property
    def status(self) -> dict[str, Any]:
        return self.raw_job["status"]


def test_a_job_from_creation_to_success() -> None:
    cluster = Cluster()
    cluster.converge()
    assert cluster.status["phase"] == "Starting" and len(cluster.pods) == 2 and len(cluster.services) == 1
    cluster.set_phase("Running")
    cluster.converge()
    assert cluster.status["phase"] == "Running" and cluster.status["workers"] == "2/2"
    cluster.set_phase("Succeeded")
    cluster.converge()
    assert cluster.status["phase"] == "Succeeded" and cluster.status["restarts"] == 0
    assert cluster.events == [("Normal", "Starting"), ("Normal", "Running"), ("Normal", "Succeeded")]


def test_restart_then_backoff_limit() -> None:
    cluster = Cluster(runPolicy={"backoffLimit": 1})
    cluster.converge()
    cluster.set_phase("Running")
    cluster.converge()
    cluster.set_phase("Failed", index=1, exitCode=137)
    cluster.converge()
    assert cluster.status["restarts"] == 1 and cluster.attempts() == {"1"} and len(cluster.pods) == 2
    cluster.set_phase("Running")
    cluster.converge()
    assert cluster.status["phase"] == "Running"
    cluster.set_phase("Failed", index=0, exitCode=1)
    cluster.converge()
    assert cluster.status["phase"] == "Failed" and cluster.status["restarts"] == 1
    assert [c["reason"] for c in cluster.status["conditions"] if c["type"] == "Failed"] == ["BackoffLimitExceeded"]
    assert ("Warning", "Restarting") in cluster.events and cluster.events[-1] == ("Warning", "Failed")


def test_a_restart_applied_halfway_is_never_counted_twice() -> None:
    cluster = Cluster()
    cluster.converge()
    cluster.set_phase("Running")
    cluster.converge()
    cluster.set_phase("Failed", index=0, exitCode=1)
    first = cluster.plan()
    cluster.apply(first, write_status=False)  # the operator died before the status write
    again = cluster.plan()
    assert again.status.restarts == 1 and again.delete_pods == [], "the same decision, nothing new to delete"
    cluster.apply(again, act=False)  # ...and now died after it, before acting
    assert cluster.plan().status.restarts == 1
    cluster.settle()
    cluster.converge()
    assert cluster.status["restarts"] == 1 and cluster.attempts() == {"1"}


def test_suspend_and_resume() -> None:
    cluster = Cluster(runPolicy={"activeDeadlineSeconds": 600})
    cluster.converge()
    cluster.set_phase("Running")
    cluster.converge()
    cluster.raw_job["spec"]["runPolicy"]["suspend"] = True
    cluster.raw_job["metadata"]["generation"] = 2
    cluster.reconcile()
    assert cluster.status["phase"] == "Suspended" and "startTime" not in cluster.status
    cluster.now += timedelta(hours=1)
    cluster.raw_job["spec"]["runPolicy"]["suspend"] = False
    cluster.raw_job["metadata"]["generation"] = 3
    cluster.reconcile()  # the old pods are still terminating
    assert cluster.status["restarts"] == 0 and cluster.status["phase"] == "Pending"
    cluster.settle()
    cluster.converge()
    cluster.set_phase("Running")
    cluster.converge()
    assert cluster.status["phase"] == "Running" and cluster.status["restarts"] == 0
    assert cluster.status["observedGeneration"] == 3 and cluster.plan().requeue_after == RECHECK_SECONDS


def test_the_reconcilers_planning_leaves_the_cached_bodies_as_they_were() -> None:
    """The operator's cache keeps the bodies its watches decoded, without copies, and hands the
    same dicts to every reconcile (controller/cache.py): planning must never write into them."""
    cluster = Cluster(workers=2)
    inputs = PlanInputs(catalogue=CATALOGUE, render=SETTINGS)

    def plan_untouched() -> None:
        raw, pods, services = cluster.raw_job, list(cluster.pods.values()), list(cluster.services.values())
        raw["metadata"].setdefault("generation", 1)
        before = copy.deepcopy((raw, pods, services))
        decision = plan_job(raw, pods, services, inputs, cluster.now, ResidencyFacts(namespace="ns"))
        assert (raw, pods, services) == before
        assert decision.status_patch is not None

    plan_untouched()  # a new job
    cluster.converge()
    plan_untouched()  # pods created, pending
    cluster.set_phase("Running")
    cluster.converge()
    plan_untouched()  # running
    cluster.set_phase("Failed", index=1)
    plan_untouched()  # a worker failed: a restart is planned
    cluster.reconcile()
    cluster.set_phase("Succeeded")
    plan_untouched()
