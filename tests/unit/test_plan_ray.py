"""plan() for runtime: ray: the head's outcome is the job's, a dead Ray worker is replaced alone,
a dead head restarts the whole group within backoffLimit, and the driver's report is the metrics."""

from __future__ import annotations

import json
from typing import Any

from kubetrain.plan import Observed
from kubetrain.render.labels import role_labels
from kubetrain.render.names import ray_head_name, worker_name
from tests.builders import JobBuilder
from tests.unit.test_plan_rules import cond, condition, created_names, raw_pod, run, running_status

NAME = "ray-train"
HEAD = ray_head_name(NAME)
WORKERS = [worker_name(NAME, i) for i in range(2)]


RAY = JobBuilder.example("ray-train.yaml").placed("ns").run_policy(backoffLimit=3).status()


def pod(role: str, index: int, phase: str = "Running", attempt: int = 0, **kwargs: Any) -> dict[str, Any]:
    """A raw pod of this job, shaped like test_plan_rules.raw_pod but named and labelled by role."""
    raw = raw_pod(index, phase, attempt, **kwargs)
    raw["metadata"]["name"] = HEAD if role == "head" else worker_name(NAME, index)
    raw["metadata"]["labels"] = role_labels(NAME, role, index, attempt, 2)
    return raw


def group(
    attempt: int = 0, head: str = "Running", worker_phases: tuple[str, str] = ("Running", "Running"), **head_kw: Any
) -> list[dict[str, Any]]:
    return [pod("head", 0, head, attempt, **head_kw)] + [
        pod("worker", i, p, attempt) for i, p in enumerate(worker_phases)
    ]


def observe(*pods: dict[str, Any]) -> Observed:
    return Observed.from_k8s(list(pods), [{"metadata": {"name": HEAD}}])


def test_a_new_job_creates_the_head_service_head_and_workers() -> None:
    result = run(RAY.obj(), Observed.from_k8s([], []))
    assert created_names(result) == [HEAD, HEAD, *WORKERS], "the head Service, then the head pod and the workers"
    assert [o["kind"] for o in result.create if o["metadata"]["name"] == HEAD] == ["Service", "Pod"]


def test_created_and_running_cover_the_head_and_every_worker() -> None:
    result = run(RAY.obj(), observe(*group(worker_phases=("Running", "Pending"))))
    assert condition(result, "Created")["status"] == "True"
    assert "the Ray head and all 2 workers" in condition(result, "Created")["message"]
    assert condition(result, "Running") is None
    result = run(RAY.obj(), observe(*group()))
    assert condition(result, "Running")["status"] == "True"
    assert set(result.status.replica_statuses) == {"head", "worker"}
    assert result.status.replica_statuses["worker"].active == 2 and result.status.replica_statuses["head"].active == 1


def test_the_job_succeeds_when_the_driver_does_and_takes_its_report() -> None:
    report = json.dumps({"outcome": "Succeeded", "reason": "Completed", "message": "test accuracy 0.9100",
                         "metrics": {"accuracy": 0.91}})
    result = run(RAY.status(running_status()).obj(), observe(*group(head="Succeeded", message=report)))
    succeeded = condition(result, "Succeeded")
    assert succeeded["status"] == "True" and succeeded["reason"] == "DriverSucceeded"
    assert "the Ray driver (head) succeeded: test accuracy 0.9100" in succeeded["message"]
    assert result.status.metrics == {"accuracy": 0.91}
    assert sorted(result.delete_pods) == WORKERS, "cleanPodPolicy Running stops the still-blocking workers"


def test_the_driver_error_fails_the_job_once_backoff_is_used_up() -> None:
    report = json.dumps({"outcome": "Failed", "reason": "TrainerError", "message": "ValueError: boom", "metrics": {}})
    job = RAY.run_policy(backoffLimit=1).status(running_status(restarts=1)).obj()
    result = run(job, observe(*group(1, head="Failed", message=report)))
    failed = condition(result, "Failed")
    assert failed["status"] == "True" and failed["reason"] == "BackoffLimitExceeded"
    assert f"Ray head {HEAD} failed: ValueError: boom" in failed["message"]


def test_a_failed_head_restarts_the_whole_group() -> None:
    result = run(RAY.status(running_status()).obj(), observe(*group(head="Failed", exit_code=1)))
    assert result.status.restarts == 1
    restarting = condition(result, "Restarting")
    assert (
        restarting["status"] == "True"
        and "restarting the Ray head and every worker (restart 1" in restarting["message"]
    )
    assert sorted(result.delete_pods) == sorted([HEAD, *WORKERS])
    assert created_names(result) == []


def test_a_permanent_driver_verdict_is_not_retried() -> None:
    report = json.dumps({"outcome": "Failed", "reason": "InvalidData", "message": "no rows", "metrics": {}})
    result = run(RAY.status(running_status()).obj(), observe(*group(head="Failed", message=report)))
    assert condition(result, "Failed")["reason"] == "InvalidData" and result.status.restarts == 0


def test_a_dead_worker_is_replaced_alone_without_a_restart() -> None:
    result = run(RAY.status(running_status()).obj(), observe(*group(worker_phases=("Running", "Failed"))))
    assert result.delete_pods == [WORKERS[1]]
    assert result.status.restarts == 0 and condition(result, "Restarting") is None
    assert condition(result, "Running")["status"] == "True"
    [event] = [e for e in result.events if e.reason == "WorkerReplaced"]
    assert WORKERS[1] in event.message and "replacing it alone" in event.message
    # Once its name is free, the same attempt's worker is created again, and nothing else.
    again = run(RAY.status(result.status.to_k8s()).obj(), observe(*group()[:2]))
    assert created_names(again) == [WORKERS[1]]
    [recreated] = [o for o in again.create if o["kind"] == "Pod"]
    assert recreated["metadata"]["labels"]["kubetrain.io/attempt"] == "0"


def test_worker_replacements_are_bounded_per_attempt() -> None:
    """A worker that can never join would be replaced forever: maxWorkerFailures (3 by default)
    replacements per attempt, then the attempt fails and counts against backoffLimit."""
    status = running_status()
    for replaced in range(1, 4):
        result = run(RAY.status(status).obj(), observe(*group(worker_phases=("Running", "Failed"))))
        assert result.delete_pods == [WORKERS[1]] and result.status.restarts == 0
        assert result.status.worker_replacements == replaced
        status = result.status.to_k8s()
    result = run(RAY.status(status).obj(), observe(*group(worker_phases=("Running", "Failed"))))
    restarting = condition(result, "Restarting")
    assert restarting["status"] == "True" and restarting["reason"] == "WorkerReplacementsExhausted"
    assert "3 workers already replaced in this attempt (spec.ray.maxWorkerFailures: 3)" in restarting["message"]
    assert result.status.restarts == 1 and result.status.worker_replacements is None, "counted per attempt"
    assert sorted(result.delete_pods) == sorted([HEAD, *WORKERS])


def test_a_worker_lost_after_creation_is_recreated_not_a_failure() -> None:
    status = running_status()
    result = run(RAY.status(status).obj(), observe(*group()[:2]))
    assert condition(result, "Failed") is None and result.status.restarts == 0
    assert created_names(result) == [WORKERS[1]]


def test_a_lost_head_after_creation_restarts_the_group() -> None:
    result = run(RAY.status(running_status()).obj(), observe(*group()[1:]))
    assert result.status.restarts == 1
    assert f"Ray head {HEAD} disappeared" in condition(result, "Restarting")["message"]


def test_pods_of_a_previous_attempt_are_leftovers() -> None:
    status = running_status(restarts=1, conditions=[cond("Restarting")])
    result = run(RAY.status(status).obj(), observe(*group(0)))
    assert sorted(result.delete_pods) == sorted([HEAD, *WORKERS])
    result = run(RAY.status(status).obj(), Observed.from_k8s([], [{"metadata": {"name": HEAD}}]))
    heads = [o for o in result.create if o["kind"] == "Pod" and o["metadata"]["name"] == HEAD]
    assert heads[0]["metadata"]["labels"]["kubetrain.io/attempt"] == "1"
