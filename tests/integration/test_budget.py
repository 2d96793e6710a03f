"""GPU budgets on the real control plane: the cost estimate in status, refusal at admission
(the webhook's message names what is left, or that the job is larger than the whole budget),
refusal before start in the reconcile, an edit of a running job that raises its cost refused at
admission, accounting of what finished jobs really used, and a budget that queues (onExhaustion
Queue) instead of refusing."""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Iterator
from typing import Any

import kubernetes
import pytest
from kubernetes.client.exceptions import ApiException

from kubetrain.devcluster.cluster import LocalCluster
from tests.builders import example
from tests.jobs import Jobs
from tests.operator_process import OperatorProcess, metric
from tests.registry import finish

pytestmark = pytest.mark.cluster

BUDGET = 1.5
A100_PRICE = 2.5  # the built-in catalogue's a100-eu pricePerGpuHour
NEVER_FITS = "more than the whole budget of 1.5 GPU-hours per day"  # a job no wait would let start


@pytest.fixture
def jobs(api: kubernetes.client.ApiClient, namespace: str, operator: OperatorProcess) -> Jobs:
    return Jobs(api, namespace)


@pytest.fixture
def budget(jobs: Jobs, namespace: str) -> Iterator[str]:
    """A BudgetPolicy selecting only this test's namespace (it is cluster-scoped)."""
    body = example("budget-team-risk.yaml")
    body["metadata"]["name"] = f"budget-{namespace}"
    body["spec"] = {"namespaces": [namespace], "gpuHours": BUDGET, "period": "Day"}
    jobs.custom.create_cluster_custom_object("kubetrain.io", "v1alpha1", "budgetpolicies", body)
    try:
        yield body["metadata"]["name"]
    finally:
        jobs.custom.delete_cluster_custom_object("kubetrain.io", "v1alpha1", "budgetpolicies", body["metadata"]["name"])


def gpu_job(name: str, gpus: int = 1, deadline: int | None = 3600, **spec: Any) -> dict[str, Any]:
    manifest = copy.deepcopy(example("pytorch-ddp.yaml"))
    manifest["metadata"]["name"] = name
    manifest["spec"]["runPolicy"] = {"activeDeadlineSeconds": deadline} if deadline else {}
    manifest["spec"].update(workers=1, resources={"gpus": gpus}, **spec)
    return manifest


def refusal(jobs: Jobs, manifest: dict[str, Any]) -> str:
    with pytest.raises(ApiException) as refused:
        jobs.create(manifest)
    assert refused.value.status == 403, refused.value.body
    return str(refused.value.body)


def hours(status: dict[str, Any]) -> float:
    parse = dt.datetime.fromisoformat
    return (parse(status["completionTime"]) - parse(status["startTime"])).total_seconds() / 3600


def test_estimate_in_status_and_refusals_at_admission(jobs: Jobs, budget: str, operator: OperatorProcess) -> None:
    running = jobs.create(gpu_job("holds-one"))
    jobs.wait_pods(running, 1, phase="Running")
    cost = jobs.status(running)["cost"]
    assert cost == {"estimatedGpuHours": 1.0, "pricePerGpuHour": A100_PRICE, "estimatedCost": A100_PRICE,
                    "usedGpuHours": 0.0}
    assert jobs.condition(running, "BudgetAvailable")["reason"] == "WithinBudget"  # type: ignore[index]
    # The metrics account as admission does: the running job holds its whole estimate.
    jobs.wait_phase(running, "Running")
    page, labels = operator.metrics(), {"namespace": jobs.ns, "policy": budget}
    assert metric(page, "kubetrain_budget_gpu_hours", **labels) == BUDGET
    assert metric(page, "kubetrain_budget_gpu_hours_remaining", **labels) == pytest.approx(BUDGET - 1.0)
    assert metric(page, "kubetrain_budget_gpu_hours_used", **labels) < 0.1
    assert metric(page, "kubetrain_trainingjobs", namespace=jobs.ns, phase="Running") == 1

    message = refusal(jobs, gpu_job("too-big"))
    assert f"BudgetPolicy {budget}" in message and "0.5 of 1.5 GPU-hours left this day" in message, message
    assert "needs up to 1" in message and not jobs.exists("too-big")

    message = refusal(jobs, gpu_job("unbounded", deadline=None))
    assert "spec.runPolicy.activeDeadlineSeconds is required" in message, message

    cpu_only = jobs.create(gpu_job("cpu-only", gpus=0, nodePool="cpu"))
    assert jobs.wait_condition(cpu_only, "BudgetAvailable")["status"] == "True"


def test_reconcile_refuses_a_job_that_no_longer_fits(jobs: Jobs, budget: str) -> None:
    held = jobs.create(gpu_job("held", runPolicy={"activeDeadlineSeconds": 3600, "suspend": True}))
    jobs.wait_phase(held, "Suspended")
    running = jobs.create(gpu_job("first"))
    jobs.wait_pods(running, 1, phase="Running")

    jobs.patch_spec(held, {"runPolicy": {"suspend": False}})
    condition = jobs.wait_condition(held, "BudgetAvailable")
    assert condition["status"] == "False" and condition["reason"] == "BudgetExceeded", condition
    assert "0.5 of 1.5 GPU-hours left" in condition["message"]
    status = jobs.wait_phase(held, "Failed")
    failed = next(c for c in status["conditions"] if c["type"] == "Failed")
    assert failed["reason"] == "BudgetExceeded"
    assert jobs.pods(held, include_terminating=True) == []
    jobs.wait_events(held, "BudgetExceeded")


def test_finished_jobs_count_what_they_used(jobs: Jobs, budget: str) -> None:
    done = jobs.create(gpu_job("done"))
    finish(jobs, done, {"accuracy": 0.9})
    status = jobs.status(done)
    used = hours(status)
    assert status["cost"]["usedGpuHours"] == pytest.approx(used, abs=1e-6)
    assert status["cost"]["usedCost"] == pytest.approx(used * A100_PRICE, abs=1e-5)

    # The finished job holds only what it used, no longer its 1 GPU-hour estimate: a job of 1.25
    # GPU-hours fits beside it (only 0.5 would be left if it still held its estimate).
    fits = jobs.create(gpu_job("fits", deadline=4500))
    assert jobs.wait_condition(fits, "BudgetAvailable")["status"] == "True"
    message = refusal(jobs, gpu_job("half-hour", deadline=1800))
    assert f"{BUDGET - used - 1.25:.4g} of 1.5 GPU-hours left" in message, message

    message = refusal(jobs, gpu_job("two-hours", gpus=2))
    assert f"{NEVER_FITS}, so it can never fit" in message, message


@pytest.mark.parametrize(("spec", "named"), [
    ({"workers": 2}, f"needs up to 2 GPU-hours (2 workers x 1 GPUs x 3600s activeDeadlineSeconds), {NEVER_FITS}"),
    ({"runPolicy": {"activeDeadlineSeconds": 7200}}, f"needs up to 2 GPU-hours (1 workers x 1 GPUs x 7200s "
                                                     f"activeDeadlineSeconds), {NEVER_FITS}"),
    ({"runPolicy": {"activeDeadlineSeconds": None}}, "spec.runPolicy.activeDeadlineSeconds is required"),
], ids=["workers", "longer-deadline", "no-deadline"])
def test_an_edit_of_a_running_job_that_raises_its_cost_past_the_budget_is_refused(
    jobs: Jobs, budget: str, spec: dict[str, Any], named: str
) -> None:
    name = jobs.create(gpu_job("grows"))
    jobs.wait_pods(name, 1, phase="Running")

    with pytest.raises(ApiException) as refused:
        jobs.patch_spec(name, spec)

    assert refused.value.status == 403 and "refused by the GPU budget" in str(refused.value.body), refused.value.body
    assert named in str(refused.value.body), refused.value.body
    assert jobs.get(name)["spec"]["workers"] == 1
    jobs.patch_spec(name, {"runPolicy": {"activeDeadlineSeconds": 1800}})  # lowering the cost always passes


def test_a_queueing_budget_holds_a_job_queued_until_it_is_raised(
    jobs: Jobs, budget: str, cluster: LocalCluster
) -> None:
    policies = ("kubetrain.io", "v1alpha1", "budgetpolicies", budget)
    jobs.custom.patch_cluster_custom_object(*policies, {"spec": {"onExhaustion": "Queue"}})
    running = jobs.create(gpu_job("holds-one"))
    jobs.wait_pods(running, 1, phase="Running")

    waiting = jobs.create(gpu_job("waits"))  # admitted: the webhook leaves it to the queue

    status = jobs.wait_phase(waiting, "Queued")
    queued = next(c for c in status["conditions"] if c["type"] == "Queued")
    assert queued["reason"] == "BudgetExhausted" and "0.5 of 1.5 GPU-hours left this day" in queued["message"]
    assert status["cost"]["estimatedGpuHours"] == 1.0 and jobs.pods(waiting) == []
    row = cluster.kubectl("get", "tj", waiting, "-n", jobs.ns, "--no-headers").stdout.split()
    assert row[1] == "Queued" and "BudgetExhausted" in row, row

    jobs.custom.patch_cluster_custom_object(*policies, {"spec": {"gpuHours": 3}})

    jobs.wait_pods(waiting, 1, phase="Running", timeout=30)
    assert jobs.condition(waiting, "Queued")["reason"] == "Admitted"  # type: ignore[index]
    assert [e.reason for e in jobs.events(waiting) if e.type == "Warning"] == []
