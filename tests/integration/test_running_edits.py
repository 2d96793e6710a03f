"""Edits of a started TrainingJob on the real control plane: data and build fields are refused by
the CRD's CEL transition rules (the template's PodSpec by the spec webhook), also while the job
is suspended, and a spec.workers edit rolls the group into a new attempt of the new size without
using a restart."""

from __future__ import annotations

from typing import Any

import kubernetes
import pytest
from kubernetes.client.exceptions import ApiException

from tests.builders import example
from tests.helpers import wait_for
from tests.jobs import Jobs
from tests.operator_process import OperatorProcess

pytestmark = pytest.mark.cluster


@pytest.fixture
def jobs(api: kubernetes.client.ApiClient, namespace: str, operator: OperatorProcess) -> Jobs:
    return Jobs(api, namespace)


def world_size(pod: Any) -> str:
    return next(e.value for e in pod.spec.containers[0].env if e.name == "WORLD_SIZE")


def attempt_running(jobs: Jobs, name: str, attempt: int, size: int) -> list[Any] | None:
    live = jobs.pods(name, include_terminating=True)
    if len(live) != size or any(p.metadata.labels["kubetrain.io/attempt"] != str(attempt) for p in live):
        return None
    return live if all(p.status.phase == "Running" for p in live) else None


@pytest.mark.parametrize(("spec", "field"), [
    ({"dataset": {"uri": "file:///var/lib/kubetrain/data/other.csv"}}, "spec.dataset"),
    ({"task": {"type": "tabular-classification", "epochs": 50}}, "spec.task"),
    ({"env": [{"name": "LOG_LEVEL", "value": "debug"}]}, "spec.env"),
    ({"podTemplate": {"spec": {"volumes": [{"name": "scratch", "emptyDir": {}}]}}}, "spec.podTemplate.spec"),
], ids=["dataset", "task", "env", "template-spec"])
def test_data_and_build_fields_of_a_started_job_cannot_change(jobs: Jobs, spec: dict[str, Any], field: str) -> None:
    name = jobs.create(example("pytorch-ddp.yaml"))
    jobs.wait_pods(name, 2, phase="Running")
    wait_for(lambda: jobs.status(name).get("startTime"), timeout=20, what="startTime")

    with pytest.raises(ApiException) as refused:
        jobs.patch_spec(name, spec)

    assert refused.value.status == 422
    assert f"{field} cannot change once the job has started" in str(refused.value.body), refused.value.body
    assert jobs.get(name)["spec"]["dataset"]["uri"] == "file:///var/lib/kubetrain/data/tabular.csv"


def test_a_workers_edit_rolls_the_group_into_new_attempts_without_using_restarts(jobs: Jobs) -> None:
    name = jobs.create(example("pytorch-ddp.yaml"))
    jobs.wait_pods(name, 2, phase="Running")
    jobs.wait_phase(name, "Running")

    jobs.patch_spec(name, {"workers": 3})
    grown = wait_for(lambda: attempt_running(jobs, name, 1, 3), timeout=60, what="attempt 1 with 3 workers")
    assert {world_size(p) for p in grown} == {"3"}
    status = jobs.wait_phase(name, "Running")
    assert status["restarts"] == 0 and status["attempt"] == 1

    jobs.patch_spec(name, {"workers": 1})
    shrunk = wait_for(lambda: attempt_running(jobs, name, 2, 1), timeout=60, what="attempt 2 with 1 worker")
    assert world_size(shrunk[0]) == "1"
    status = jobs.wait_phase(name, "Running")
    assert status["restarts"] == 0 and status["attempt"] == 2
    wait_for(lambda: jobs.status(name).get("workers") == "1/1", timeout=20, what="workers 1/1")
    jobs.wait_events(name, "WorkersChanged")


@pytest.mark.parametrize(("spec", "field"), [
    ({"dataset": {"uri": "file:///var/lib/kubetrain/data/other.csv"}}, "spec.dataset"),
    ({"podTemplate": {"spec": {"volumes": [{"name": "scratch", "emptyDir": {}}]}}}, "spec.podTemplate.spec"),
], ids=["dataset", "template-spec"])
def test_a_suspended_job_stays_frozen(jobs: Jobs, spec: dict[str, Any], field: str) -> None:
    """Suspension clears startTime (the deadline clock) but not firstStartTime: suspend, edit,
    resume cannot swap the data under the job's checkpoints."""
    name = jobs.create(example("pytorch-ddp.yaml"))
    jobs.wait_pods(name, 2, phase="Running")
    first = wait_for(lambda: jobs.status(name).get("firstStartTime"), timeout=20, what="firstStartTime")
    jobs.patch_spec(name, {"runPolicy": {"suspend": True}})
    status = jobs.wait_phase(name, "Suspended")
    assert "startTime" not in status and status["firstStartTime"] == first

    with pytest.raises(ApiException) as refused:
        jobs.patch_spec(name, spec)

    assert refused.value.status == 422
    assert f"{field} cannot change once the job has started" in str(refused.value.body), refused.value.body
    assert jobs.get(name)["spec"]["dataset"]["uri"] == "file:///var/lib/kubetrain/data/tabular.csv"
