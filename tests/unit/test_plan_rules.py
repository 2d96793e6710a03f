"""plan(): every lifecycle rule of a TrainingJob, from observed pods and the job's status."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from functools import partial
from typing import Any

import pytest

from kubetrain.api import TrainingJob, default_catalogue
from kubetrain.plan import Observed, Plan, plan
from kubetrain.plan.decision import Needs, create_refused
from kubetrain.plan.failures import cause_in_log
from kubetrain.plan.job import Desired
from kubetrain.plan.residency import RECHECK_SECONDS
from kubetrain.render import RenderSettings
from kubetrain.render.job import render_children
from kubetrain.render.labels import worker_labels
from kubetrain.render.names import worker_name
from tests.builders import JobBuilder

CATALOGUE = default_catalogue()
SETTINGS = RenderSettings(default_image="trainer:test")
NOW = datetime(2025, 1, 1, 12, 0, 0, tzinfo=timezone.utc)
T0 = "2025-01-01T11:00:00Z"
NAME = "pytorch-ddp"


DDP = JobBuilder.example("pytorch-ddp.yaml").placed("ns").status()


def cond(type_: str, status: bool = True, reason: str = "R", since: str = T0) -> dict[str, Any]:
    return {
        "type": type_,
        "status": "True" if status else "False",
        "reason": reason,
        "message": "",
        "lastTransitionTime": since,
    }


def running_status(restarts: int = 0, **extra: Any) -> dict[str, Any]:
    return {
        "phase": "Running",
        "restarts": restarts,
        "startTime": T0,
        "conditions": [cond("Created"), cond("Running")],
        **extra,
    }


def raw_pod(
    index: int,
    phase: str = "Running",
    attempt: int = 0,
    *,
    deleting: bool = False,
    exit_code: int | None = None,
    reason: str | None = None,
    message: str | None = None,
    pod_reason: str | None = None,
    workers: int | None = None,
) -> dict[str, Any]:
    """`workers`: the kubetrain.io/workers label (None: left out, as on pods of older operators)."""
    terminated = None
    if phase in ("Succeeded", "Failed"):
        terminated = {
            "exitCode": exit_code if exit_code is not None else (0 if phase == "Succeeded" else 1),
            "reason": reason or ("Completed" if phase == "Succeeded" else "Error"),
            **({"message": message} if message else {}),
        }
    labels = worker_labels(NAME, index, attempt, workers or 0)
    if workers is None:
        del labels["kubetrain.io/workers"]
    meta: dict[str, Any] = {"name": worker_name(NAME, index), "labels": labels}
    if deleting:
        meta["deletionTimestamp"] = "2025-01-01T11:59:00Z"
    return {
        "metadata": meta,
        "spec": {"nodeName": "kwok-a100-eu-0"},
        "status": {
            "phase": phase,
            **({"reason": pod_reason} if pod_reason else {}),
            "containerStatuses": [
                {
                    "name": "trainer",
                    "ready": phase == "Running",
                    "state": {"terminated": terminated} if terminated else {"running": {}},
                }
            ],
        },
    }


def observe(*pods: dict[str, Any], service: bool = True) -> Observed:
    return Observed.from_k8s(list(pods), [{"metadata": {"name": NAME}}] if service else [])


def children(job: TrainingJob, regions: list[str] | None = None) -> Desired:
    """The render step beside the planner, as plan_job runs it (`regions`: the residency verdict's)."""
    return partial(render_children, job, CATALOGUE, SETTINGS, regions)


def run(job: TrainingJob, observed: Observed, now: datetime = NOW) -> Plan:
    return plan(job, observed, children(job), CATALOGUE, SETTINGS, now)


def condition(result: Plan, type_: str) -> dict[str, Any] | None:
    return next((c.to_k8s() for c in result.status.conditions if c.type == type_), None)


ACCESS_KINDS = ("ServiceAccount", "Role", "RoleBinding")


def created_names(result: Plan) -> list[str]:
    """The workload objects created (the trainer's access objects have their own test)."""
    return [o["metadata"]["name"] for o in result.create if o["kind"] not in ACCESS_KINDS]


def report(outcome: str, reason: str, metrics: dict[str, float] | None = None) -> str:
    return json.dumps(
        {"outcome": outcome, "reason": reason, "message": f"trainer says {reason}", "metrics": metrics or {}}
    )


# --- starting -------------------------------------------------------------------------------


def test_new_job_creates_service_and_every_worker() -> None:
    result = run(DDP.obj(), observe(service=False))
    assert [o["kind"] for o in result.create] == ["Service", *ACCESS_KINDS, "Pod", "Pod"]
    assert created_names(result) == [NAME, f"{NAME}-worker-0", f"{NAME}-worker-1"]
    assert result.status.phase == "Pending" and result.status.start_time == NOW
    assert result.delete_pods == [] and result.events == [] and not result.delete_job


@pytest.mark.parametrize(
    ("phases", "phase", "created", "running"),
    [
        (["Pending"], "Pending", None, None),
        (["Pending", "Pending"], "Starting", "True", None),
        (["Running", "Pending"], "Starting", "True", None),
        (["Running", "Running"], "Running", "True", "True"),
    ],
)
def test_running_only_when_every_worker_runs(
    phases: list[str], phase: str, created: str | None, running: str | None
) -> None:
    result = run(DDP.status({"startTime": T0}).obj(), observe(*(raw_pod(i, p) for i, p in enumerate(phases))))
    assert result.status.phase == phase
    assert (condition(result, "Created") or {}).get("status") == created
    assert (condition(result, "Running") or {}).get("status") == running
    assert created_names(result) == [f"{NAME}-worker-{i}" for i in range(len(phases), 2)]


def test_phase_changes_emit_events() -> None:
    result = run(
        DDP.status({"startTime": T0, "phase": "Starting", "conditions": [cond("Created")]}).obj(),
        observe(raw_pod(0), raw_pod(1)),
    )
    assert [(e.type, e.reason) for e in result.events] == [("Normal", "Running")]
    assert "all 2 workers" in result.events[0].message


def test_replica_statuses_and_workers_column() -> None:
    result = run(DDP.status(running_status()).obj(), observe(raw_pod(0), raw_pod(1, "Pending")))
    worker = result.status.replica_statuses["worker"]
    assert (worker.active, worker.ready, worker.succeeded, worker.failed) == (2, 1, 0, 0)
    assert result.status.workers == "1/2"


def test_a_worker_finishing_before_the_others_changes_nothing() -> None:
    job = DDP.status(running_status()).obj()
    result = run(job, observe(raw_pod(0, "Succeeded"), raw_pod(1)))
    assert result.status.phase == "Running" and not result.create and not result.delete_pods and not result.events


def test_pod_missing_before_the_attempt_was_fully_created_is_created_not_counted() -> None:
    result = run(DDP.status({"startTime": T0}).obj(), observe(raw_pod(1)))
    assert created_names(result) == [f"{NAME}-worker-0"] and result.status.restarts == 0


# --- success --------------------------------------------------------------------------------


def test_all_workers_succeeded_is_success() -> None:
    pods = observe(
        raw_pod(0, "Succeeded", message=report("Succeeded", "Completed", {"accuracy": 0.9})), raw_pod(1, "Succeeded")
    )
    result = run(DDP.status(running_status()).obj(), pods)
    assert result.status.phase == "Succeeded" and result.status.completion_time == NOW
    succeeded = condition(result, "Succeeded")
    assert succeeded and succeeded["status"] == "True" and "trainer says Completed" in succeeded["message"]
    assert (condition(result, "Running") or {})["status"] == "False"
    assert [(e.type, e.reason) for e in result.events] == [("Normal", "Succeeded")]
    assert result.delete_pods == [] and result.requeue_after is None


# --- failures and restarts ------------------------------------------------------------------


# A log tail as FallbackToLogsOnError keeps it: the worker's traceback, then torchrun's summary.
TORCHRUN_CRASH_TAIL = """Traceback (most recent call last):
  File "/workspace/ddp_tutorial.py", line 33, in ddp_setup
    init_process_group(backend="gloo")
torch.distributed.DistNetworkError: Connection reset by peer
E1204 19:40:35 torch/distributed/elastic/multiprocessing/api.py] failed (exitcode: 1) local_rank: 0
torch.distributed.elastic.multiprocessing.errors.ChildFailedError:
============================================================
  traceback : To enable traceback see: https://pytorch.org/docs/stable/elastic/errors.html
============================================================
"""


@pytest.mark.parametrize(
    ("log_tail", "cause"),
    [
        (TORCHRUN_CRASH_TAIL, "torch.distributed.DistNetworkError: Connection reset by peer"),
        ("loading\nKilled by the trainer's watchdog\n\n", "Killed by the trainer's watchdog"),
        ("x" * 400, "x" * 297 + "..."),
        ("\n \n", None),
        (None, None),
    ],
)
def test_the_cause_kept_from_a_crash_is_the_last_exception_line_else_the_last_line(
    log_tail: str | None, cause: str | None
) -> None:
    assert cause_in_log(log_tail) == cause


@pytest.mark.parametrize(
    ("failing_pod", "reason", "fragments"),
    [
        (
            raw_pod(1, "Failed", exit_code=137, reason="OOMKilled"),
            "WorkerFailed",
            ["pytorch-ddp-worker-1", "exit code 137", "OOMKilled"],
        ),
        (
            raw_pod(1, "Failed", message=TORCHRUN_CRASH_TAIL),
            "WorkerFailed",
            ["exit code 1 (Error): torch.distributed.DistNetworkError: Connection reset by peer"],
        ),
        (raw_pod(1, "Failed", pod_reason="Evicted"), "WorkerFailed", ["pytorch-ddp-worker-1"]),
        (raw_pod(1, deleting=True), "WorkerDeleted", ["pytorch-ddp-worker-1"]),
        (raw_pod(1, "Failed", message=report("Failed", "TrainerError")), "TrainerError", ["trainer says TrainerError"]),
        (None, "WorkerLost", ["pytorch-ddp-worker-1", "disappeared"]),
    ],
    ids=["exit-code", "log-tail", "evicted", "deleted", "trainer-error", "missing"],
)
def test_a_worker_failure_restarts_the_whole_group(
    failing_pod: dict[str, Any] | None, reason: str, fragments: list[str]
) -> None:
    pods = [raw_pod(0)] + ([failing_pod] if failing_pod else [])
    result = run(DDP.status(running_status()).obj(), observe(*pods))
    assert result.status.restarts == 1 and result.status.phase == "Restarting"
    restarting = condition(result, "Restarting")
    assert restarting and restarting["status"] == "True" and restarting["reason"] == reason
    for fragment in fragments:
        assert fragment in restarting["message"]
    assert (condition(result, "Running") or {})["status"] == "False"
    assert (condition(result, "Created") or {})["status"] == "False"
    live = [p["metadata"]["name"] for p in pods if "deletionTimestamp" not in p["metadata"]]
    assert result.delete_pods == live, "every worker of the group goes, not just the failed one"
    assert result.create == [], "the new attempt waits until the old pods are gone"
    assert [(e.type, e.reason) for e in result.events] == [("Warning", "Restarting")]


def test_replanning_during_a_restart_never_counts_it_twice() -> None:
    restarting = DDP.status({
            "phase": "Restarting",
            "restarts": 1,
            "startTime": T0,
            "conditions": [cond("Created", False), cond("Restarting")],
        }).obj()
    old_pods = observe(raw_pod(0, attempt=0), raw_pod(1, "Failed", attempt=0))
    result = run(restarting, old_pods)
    assert result.status.restarts == 1 and result.create == [] and result.events == []
    assert result.delete_pods == [f"{NAME}-worker-0", f"{NAME}-worker-1"], "leftovers of the old attempt are deleted"
    terminating = observe(raw_pod(0, attempt=0, deleting=True), raw_pod(1, "Failed", attempt=0, deleting=True))
    result = run(restarting, terminating)
    assert result.status.restarts == 1 and result.create == [] and result.delete_pods == []


def test_new_attempt_is_created_once_the_old_pods_are_gone() -> None:
    restarting = DDP.status({
            "phase": "Restarting",
            "restarts": 1,
            "startTime": T0,
            "conditions": [cond("Created", False), cond("Restarting")],
        }).obj()
    result = run(restarting, observe(raw_pod(1, attempt=0, deleting=True)))
    assert created_names(result) == [f"{NAME}-worker-0"], "worker-1's name is still taken"
    pod = next(o for o in result.create if o["kind"] == "Pod")
    assert pod["metadata"]["labels"]["kubetrain.io/attempt"] == "1"
    env = {v["name"]: v["value"] for v in pod["spec"]["containers"][0]["env"]}
    assert env["KUBETRAIN_ATTEMPT"] == "1"
    result = run(restarting, observe(raw_pod(0, attempt=1), raw_pod(1, attempt=1)))
    assert result.status.phase == "Running" and (condition(result, "Restarting") or {})["status"] == "False"
    assert [(e.type, e.reason) for e in result.events] == [("Normal", "Running")]


def test_a_failure_while_restarting_still_emits_a_restart_event() -> None:
    restarting = DDP.status({
            "phase": "Restarting",
            "restarts": 1,
            "startTime": T0,
            "conditions": [cond("Created", False), cond("Restarting")],
        }).obj()
    result = run(restarting, observe(raw_pod(0, "Failed", attempt=1), raw_pod(1, "Pending", attempt=1)))
    assert result.status.restarts == 2 and result.status.phase == "Restarting"
    assert [(e.type, e.reason) for e in result.events] == [("Warning", "Restarting")]
    assert condition(result, "Restarting")["lastTransitionTime"] == T0  # type: ignore[index]


@pytest.mark.parametrize(("limit", "restarts"), [(0, 0), (1, 1), (3, 3)])
def test_backoff_limit_counts_whole_group_restarts(limit: int, restarts: int) -> None:
    job = DDP.run_policy(**{"backoffLimit": limit}).status(running_status(restarts)).obj()
    pods = observe(raw_pod(0, attempt=restarts), raw_pod(1, "Failed", attempt=restarts, exit_code=3))
    result = run(job, pods)
    failed = condition(result, "Failed")
    assert failed and failed["status"] == "True" and failed["reason"] == "BackoffLimitExceeded"
    assert "exit code 3" in failed["message"] and f"backoffLimit ({limit})" in failed["message"]
    assert result.status.restarts == restarts and result.status.phase == "Failed"
    assert result.create == [] and result.delete_pods == [f"{NAME}-worker-0"], (
        "cleanPodPolicy Running stops the survivor"
    )
    assert [(e.type, e.reason) for e in result.events] == [("Warning", "Failed")]


@pytest.mark.parametrize("reason", ["Diverged", "InvalidData", "InvalidConfig"])
def test_trainer_verdicts_a_restart_cannot_fix_fail_at_once(reason: str) -> None:
    pods = observe(raw_pod(0, "Failed", message=report("Failed", reason)), raw_pod(1, "Failed", exit_code=1))
    result = run(DDP.status(running_status()).obj(), pods)
    failed = condition(result, "Failed")
    assert failed and failed["reason"] == reason and "not retried" in failed["message"]
    assert result.status.restarts == 0 and result.create == []


def test_a_permanent_verdict_is_the_root_cause_among_simultaneous_failures() -> None:
    pods = observe(raw_pod(0, "Failed", exit_code=1), raw_pod(1, "Failed", message=report("Failed", "Diverged")))
    assert (condition(run(DDP.status(running_status()).obj(), pods), "Failed") or {})["reason"] == "Diverged"


# --- invalid specs --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "fragments"),
    [
        ({"nodePool": "does-not-exist"}, ["spec.nodePool", "does-not-exist", "a100-eu"]),
        ({"resources": {"gpus": 9}}, ["spec.resources.gpus", "9", "8"]),
    ],
)
def test_invalid_spec_fails_without_creating_anything(spec: dict[str, Any], fragments: list[str]) -> None:
    result = run(DDP.spec(**spec).obj(), observe(service=False))
    failed = condition(result, "Failed")
    assert failed and failed["status"] == "True" and failed["reason"] == "InvalidSpec"
    for fragment in fragments:
        assert fragment in failed["message"]
    assert result.status.phase == "Failed" and result.create == [] and result.status.completion_time == NOW
    assert [(e.type, e.reason) for e in result.events] == [("Warning", "Failed")]
    assert run(DDP.spec(**spec).status(result.status.to_k8s()).obj(), observe(service=False)).events == []


# --- suspension -----------------------------------------------------------------------------


def test_suspend_deletes_every_pod_and_holds_the_job() -> None:
    job = DDP.run_policy(**{"suspend": True}).status(running_status()).obj()
    result = run(
        job,
        observe(
            raw_pod(0), raw_pod(1, deleting=True), raw_pod(0, attempt=0) | {"metadata": {"name": "stray", "labels": {}}}
        ),
    )
    assert sorted(result.delete_pods) == [f"{NAME}-worker-0", "stray"]
    assert result.status.phase == "Suspended" and result.create == [] and not result.delete_job
    assert (condition(result, "Suspended") or {})["status"] == "True"
    assert (condition(result, "Running") or {})["status"] == "False"
    assert (condition(result, "Created") or {})["status"] == "False"
    assert result.status.start_time is None, "the deadline clock stops"
    assert [(e.type, e.reason) for e in result.events] == [("Normal", "Suspended")]


def test_suspended_before_start_creates_nothing() -> None:
    result = run(DDP.run_policy(**{"suspend": True}).obj(), observe(service=False))
    assert result.create == [] and result.status.phase == "Suspended"


def test_resume_waits_for_the_old_pods_and_starts_again_without_a_restart() -> None:
    suspended_status = {
        "phase": "Suspended",
        "conditions": [cond("Created", False), cond("Running", False), cond("Suspended")],
    }
    job = DDP.run_policy(**{"activeDeadlineSeconds": 60}).status(suspended_status).obj()
    terminating = observe(raw_pod(0, "Failed", deleting=True, exit_code=143), raw_pod(1, deleting=True))
    result = run(job, terminating)
    assert result.status.restarts == 0 and result.create == [] and result.delete_pods == []
    resumed = condition(result, "Suspended")
    assert resumed and resumed["status"] == "False" and resumed["reason"] == "Resumed"
    assert result.status.phase == "Pending" and [e.reason for e in result.events] == ["Pending"]
    later = NOW + timedelta(seconds=30)
    result = run(DDP.run_policy(**{"activeDeadlineSeconds": 60}).status(result.status.to_k8s()).obj(), observe(), later)
    assert len(created_names(result)) == 2 and result.status.start_time == later, "startTime restarts on resume"
    assert result.requeue_after == RECHECK_SECONDS  # before the 60 s deadline


# --- deadline -------------------------------------------------------------------------------


def test_active_deadline_fails_the_job_and_stops_its_pods_whatever_the_clean_policy() -> None:
    job = DDP.run_policy(**{"activeDeadlineSeconds": 3600, "cleanPodPolicy": "None"}).status(running_status()).obj()
    result = run(job, observe(raw_pod(0), raw_pod(1, "Succeeded")))
    failed = condition(result, "Failed")
    assert failed and failed["reason"] == "DeadlineExceeded" and "3600s" in failed["message"]
    assert result.delete_pods == [f"{NAME}-worker-0"] and result.requeue_after is None


def test_before_the_deadline_the_controller_is_woken_up_on_time() -> None:
    job = DDP.run_policy(**{"activeDeadlineSeconds": 3620}).status(running_status()).obj()
    result = run(job, observe(raw_pod(0), raw_pod(1)))
    assert result.status.phase == "Running" and result.requeue_after == 20


@pytest.mark.parametrize("deadline", [None, 3700])
def test_an_unfinished_job_is_rechecked_within_the_residency_period(deadline: int | None) -> None:
    """A namespace relabelled into a stricter policy wakes nothing: the re-check period bounds it."""
    job = DDP.run_policy(**{"activeDeadlineSeconds": deadline}).status(running_status()).obj()
    assert run(job, observe(raw_pod(0), raw_pod(1))).requeue_after == RECHECK_SECONDS


def test_a_job_without_pods_is_not_rechecked() -> None:
    """Suspended (or not started): nothing runs to stop, and its pods are created only after a
    judgment on fresh facts; a periodic re-check would only cost API requests per queued job."""
    suspended = run(DDP.run_policy(**{"suspend": True}).status(running_status()).obj(), observe(raw_pod(0), raw_pod(1)))
    assert suspended.status.start_time is None and suspended.delete_pods
    held = run(DDP.run_policy(**{"suspend": True}).status(suspended.status.to_k8s()).obj(), observe())
    assert held.requeue_after is None and held.create == []


# --- finished jobs --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "deleted"),
    [("Running", ["pytorch-ddp-worker-1"]), ("All", ["pytorch-ddp-worker-0", "pytorch-ddp-worker-1"]), ("None", [])],
)
def test_clean_pod_policy(policy: str, deleted: list[str]) -> None:
    job = DDP.run_policy(**{"cleanPodPolicy": policy, "backoffLimit": 0}).status(running_status()).obj()
    result = run(job, observe(raw_pod(0, "Failed"), raw_pod(1)))
    assert result.status.phase == "Failed" and sorted(result.delete_pods) == deleted


@pytest.mark.parametrize(("elapsed", "requeue", "delete"), [(10, 20.0, False), (30, None, True), (99, None, True)])
def test_ttl_after_finished(elapsed: int, requeue: float | None, delete: bool) -> None:
    finished = {"phase": "Succeeded", "completionTime": T0, "conditions": [cond("Succeeded")]}
    job = DDP.run_policy(**{"ttlSecondsAfterFinished": 30}).status(finished).obj()
    result = run(job, observe(), datetime(2025, 1, 1, 11, 0, 0, tzinfo=timezone.utc) + timedelta(seconds=elapsed))
    assert result.requeue_after == requeue and result.delete_job is delete


def test_a_finished_job_stays_finished_whatever_happens_to_its_pods() -> None:
    finished = {
        "phase": "Succeeded",
        "restarts": 0,
        "startTime": T0,
        "completionTime": T0,
        "conditions": [cond("Created"), cond("Succeeded")],
    }
    job = DDP.status(finished).obj()
    for observed in (observe(), observe(raw_pod(0, "Failed"), raw_pod(1, deleting=True))):
        result = run(job, observed)
        assert result.status.phase == "Succeeded" and result.status.restarts == 0
        assert (
            result.create == []
            and result.events == []
            and result.status.completion_time.isoformat() == "2025-01-01T11:00:00+00:00"
        )


# --- leftovers, metrics ---------------------------------------------------------------------


def test_pods_not_of_the_current_attempt_are_always_deleted() -> None:
    job = DDP.spec(workers=2).status(running_status(restarts=2)).obj()
    stale = [raw_pod(0, attempt=1) | {"metadata": {"name": "old", "labels": worker_labels(NAME, 0, 1, 2)}}]
    extra = [raw_pod(5, attempt=2)]
    result = run(job, observe(raw_pod(0, attempt=2), raw_pod(1, attempt=2), *stale, *extra))
    assert sorted(result.delete_pods) == ["old", f"{NAME}-worker-5"] and result.status.restarts == 2


def test_metrics_fall_back_to_rank_zeros_termination_message() -> None:
    message = report("Succeeded", "Completed", {"accuracy": 0.93, "f1": 0.9})
    pods = observe(raw_pod(0, "Succeeded", message=message), raw_pod(1, "Succeeded"))
    assert run(DDP.status(running_status()).obj(), pods).status.metrics == {"accuracy": 0.93, "f1": 0.9}
    written = run(DDP.status(running_status(metrics={"accuracy": 0.5})).obj(), pods).status.metrics
    assert written == {"accuracy": 0.5}, "the trainer's own metrics are never overwritten"
    logs = observe(raw_pod(0, "Failed", message="Traceback (most recent call last): ..."), raw_pod(1))
    assert run(DDP.status(running_status()).obj(), logs).status.metrics == {}


def test_progress_is_passed_through_untouched() -> None:
    progress = {"epoch": 2, "totalEpochs": 5, "percent": 40.0, "updateTime": "2025-01-01T11:59:00Z"}
    result = run(DDP.status(running_status(progress=progress)).obj(), observe(raw_pod(0), raw_pod(1)))
    assert result.status.progress is not None and result.status.progress.to_k8s() == progress


def test_observed_generation_follows_the_spec() -> None:
    result = run(DDP.generation(4).status(running_status()).obj(), observe(raw_pod(0), raw_pod(1)))
    assert result.status.observed_generation == 4
    assert all(c.observed_generation == 4 for c in result.status.conditions)


def test_trainer_access_is_created_with_the_pods_and_only_then() -> None:
    first = run(DDP.obj(), observe(service=False))
    access = [o for o in first.create if o["kind"] in ACCESS_KINDS]
    assert [o["metadata"]["name"] for o in access] == [f"{NAME}-trainer"] * 3
    pods = [o for o in first.create if o["kind"] == "Pod"]
    assert all(p["spec"]["serviceAccountName"] == f"{NAME}-trainer" for p in pods)
    steady = run(DDP.obj(), observe(raw_pod(0, phase="Running"), raw_pod(1, phase="Running")))
    assert steady.create == []


@pytest.mark.parametrize(
    ("status", "fresh"),
    [
        ({}, True),  # no pods yet: a policy created a moment ago must count
        ({"phase": "Pending", "conditions": [cond("Created", False)]}, True),
        (running_status(), False),  # started: the watch-fed list, re-judged on every policy change
        ({"phase": "Succeeded", "startTime": T0, "conditions": [cond("Succeeded")]}, False),
    ],
)
def test_residency_facts_are_read_fresh_until_the_job_first_starts(status: dict[str, Any], fresh: bool) -> None:
    raw = DDP.status(status).obj().model_dump(by_alias=True, exclude_none=True, mode="json")
    assert Needs.of(raw, NOW, []).fresh_residency is fresh


def test_a_status_that_needs_facts_not_fetched_calls_for_another_reconcile() -> None:
    fetched = Needs(budget=False, promotion=False)
    assert Needs(promotion=True).beyond(fetched), "Succeeded was just written: promotion comes next"
    assert Needs(budget=True).beyond(fetched)
    assert not Needs(promotion=True).beyond(Needs(promotion=True)), "already fetched in this reconcile"
    assert not Needs().beyond(fetched)


# --- stalls: why the workers are not running ------------------------------------------------


def stalled(index: int, waiting: dict[str, str] | None = None, unschedulable: str | None = None) -> dict[str, Any]:
    pod = raw_pod(index, phase="Pending")
    status = pod["status"]
    if waiting is not None:
        status["containerStatuses"][0]["state"] = {"waiting": waiting}
    if unschedulable is not None:
        status["conditions"] = [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                                 "message": unschedulable}]
        del status["containerStatuses"]
    return pod


@pytest.mark.parametrize(
    ("pod", "reason", "message"),
    [
        (stalled(1, unschedulable="0/7 nodes are available: 7 Insufficient nvidia.com/gpu."), "Unschedulable",
         f"pod {NAME}-worker-1: 0/7 nodes are available: 7 Insufficient nvidia.com/gpu."),
        (stalled(1, {"reason": "ImagePullBackOff", "message": 'Back-off pulling image "nope:1"'}), "ImagePullBackOff",
         f'pod {NAME}-worker-1: Back-off pulling image "nope:1"'),
        (stalled(1, {"reason": "CreateContainerConfigError", "message": 'secret "creds" not found'}),
         "CreateContainerConfigError", f'pod {NAME}-worker-1: secret "creds" not found'),
    ],
    ids=["unschedulable", "image-pull", "config-error"],
)
def test_a_stalled_pod_says_why_in_running_and_an_event(pod: dict[str, Any], reason: str, message: str) -> None:
    starting = {"phase": "Starting", "startTime": T0, "conditions": [cond("Created")]}
    result = run(DDP.status(starting).obj(), observe(raw_pod(0), pod))
    running = condition(result, "Running")
    assert running is not None and running["status"] == "False"
    assert (running["reason"], running["message"]) == (reason, message)
    assert [(e.type, e.reason, e.message) for e in result.events] == [("Warning", reason, message)]
    assert result.status.phase == "Starting" and result.create == []

    again = run(DDP.status(result.status.to_k8s()).obj(), observe(raw_pod(0), pod))
    assert again.events == [] and condition(again, "Running") == running, "reported once"


def test_the_kubelets_image_pull_back_off_flapping_is_one_stall() -> None:
    first = run(DDP.status({"phase": "Starting", "startTime": T0, "conditions": [cond("Created")]}).obj(),
                observe(raw_pod(0), stalled(1, {"reason": "ErrImagePull", "message": "pull failed"})))
    backoff = run(DDP.status(first.status.to_k8s()).obj(),
                  observe(raw_pod(0), stalled(1, {"reason": "ImagePullBackOff", "message": "Back-off"})))
    assert backoff.events == [] and condition(backoff, "Running")["reason"] == "ErrImagePull"
    creating = run(DDP.status({"phase": "Starting", "startTime": T0, "conditions": [cond("Created")]}).obj(),
                   observe(raw_pod(0), stalled(1, {"reason": "ContainerCreating"})))
    assert condition(creating, "Running") is None and creating.events == [], "a container being created is no stall"


def test_a_job_whose_first_pods_are_refused_has_not_started() -> None:
    """A create refused as forbidden before any pod existed takes back the start the plan wrote:
    no deadline clock runs and the spec the message asks to fix is not frozen."""
    started = {"phase": "Pending", "startTime": T0, "firstStartTime": T0, "conditions": []}
    raw = DDP.status(started).obj().model_dump(mode="json", by_alias=True, exclude_none=True)
    refused = create_refused(raw, "the API server refuses the job's Pod x: forbidden", NOW, never_ran=True)
    assert refused.status_patch["startTime"] is None and refused.status_patch["firstStartTime"] is None
    assert [e.reason for e in refused.events] == ["CreateRefused"]
    kept = create_refused(raw, "the API server refuses the job's Pod x: forbidden", NOW, never_ran=False)
    assert "startTime" not in kept.status_patch and "firstStartTime" not in kept.status_patch


def test_a_retry_of_refused_creates_writes_no_start_until_the_pods_are_seen() -> None:
    """Each retry of a refused create would otherwise write a start for the refusal to take back,
    freezing for that moment the spec the user is asked to fix."""
    held = {"phase": "Pending", "conditions": [cond("Running", False, "CreateRefused")]}
    retry = run(DDP.status(held).obj(), observe(service=True))
    assert [o["kind"] for o in retry.create].count("Pod") == 2
    assert retry.status.start_time is None and retry.status.first_start_time is None
    seen = run(DDP.status(held).obj(), observe(raw_pod(0, "Pending"), raw_pod(1, "Pending")))
    assert seen.status.start_time == NOW and seen.status.first_start_time == NOW
