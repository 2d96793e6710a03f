"""Scheduled retraining on the real control plane: a TrainingSchedule with a 5-second interval
creates TrainingJobs from its template; a run that regresses below its gate never replaces the
promoted version."""

from __future__ import annotations

import copy
import time
from typing import Any

import kubernetes
import pytest

from tests.builders import example
from tests.helpers import wait_for
from tests.jobs import Jobs
from tests.operator_process import OperatorProcess
from tests.registry import Registry, finish

pytestmark = pytest.mark.cluster


@pytest.fixture
def jobs(api: kubernetes.client.ApiClient, namespace: str, operator: OperatorProcess) -> Jobs:
    return Jobs(api, namespace)


def schedule(every: str) -> dict[str, Any]:
    body = copy.deepcopy(example("retrain-fraud-nightly.yaml"))
    body["spec"]["schedule"] = every
    body["spec"]["jobTemplate"]["spec"]["workers"] = 1
    return body


INTERVAL_SECONDS = 5


def scheduled_jobs(jobs: Jobs) -> list[str]:
    items = jobs.custom.list_namespaced_custom_object(
        "kubetrain.io", "v1alpha1", jobs.ns, "trainingjobs", label_selector="kubetrain.io/schedule=fraud-nightly"
    )["items"]
    return sorted(i["metadata"]["name"] for i in items)


def test_schedule_creates_jobs_and_a_regressing_run_is_not_promoted(
    jobs: Jobs, api: kubernetes.client.ApiClient, namespace: str
) -> None:
    registry = Registry(api, namespace)
    registry.create_schedule(schedule("@every 5s"))
    first = wait_for(lambda: scheduled_jobs(jobs)[:1], timeout=20, what="first scheduled job")[0]
    assert first.startswith("fraud-nightly-")
    job = jobs.get(first)
    assert job["metadata"]["ownerReferences"][0]["kind"] == "TrainingSchedule"
    assert job["metadata"]["labels"]["team"] == "risk"
    finish(jobs, first, {"f1": 0.95})
    registry.wait_promoted("fraud", "fraud-v1")

    second = wait_for(lambda: [n for n in scheduled_jobs(jobs) if n > first][:1], timeout=20,
                      what="second scheduled job")[0]
    registry.patch_schedule("fraud-nightly", {"suspend": True})
    finish(jobs, second, {"f1": 0.94})  # above 0.90 but below the promoted 0.95 (maxRegression 0)
    refused = jobs.wait_condition(second, "Promoted")
    assert refused["reason"] == "GateFailed" and "promoted fraud-v1 0.95" in refused["message"], refused
    assert registry.model("fraud")["status"]["promotedVersion"] == "fraud-v1"  # type: ignore[index]

    status = registry.custom.get_namespaced_custom_object(
        "kubetrain.io", "v1alpha1", namespace, "trainingschedules", "fraud-nightly"
    )["status"]
    assert status["lastJob"] in scheduled_jobs(jobs) and "nextScheduleTime" not in status
    created = len(scheduled_jobs(jobs))
    events = jobs.core.list_namespaced_event(namespace, field_selector="involvedObject.kind=TrainingSchedule").items
    assert sum(e.reason == "JobCreated" for e in events) == created


def test_a_suspended_schedule_creates_no_more_jobs(
    jobs: Jobs, api: kubernetes.client.ApiClient, namespace: str
) -> None:
    registry = Registry(api, namespace)
    registry.create_schedule(schedule(f"@every {INTERVAL_SECONDS}s"))
    wait_for(lambda: scheduled_jobs(jobs), timeout=4 * INTERVAL_SECONDS, what="first scheduled job")
    registry.patch_schedule("fraud-nightly", {"suspend": True})

    def suspended() -> bool:
        status = registry.custom.get_namespaced_custom_object(
            "kubetrain.io", "v1alpha1", namespace, "trainingschedules", "fraud-nightly"
        ).get("status") or {}
        return "nextScheduleTime" not in status

    wait_for(suspended, what="the operator to see the suspension")
    created = scheduled_jobs(jobs)
    time.sleep(3 * INTERVAL_SECONDS)  # what must not happen has no event to wait on: three intervals
    assert scheduled_jobs(jobs) == created
