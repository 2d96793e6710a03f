"""runPolicy.progressDeadlineSeconds: the pure verdict over the trainer's reports, and what the
planner does with a stall (Stalled, a Warning Event, then runPolicy.onStall)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from kubetrain.plan.residency import RECHECK_SECONDS
from kubetrain.plan.run_policy import judge_progress
from tests.unit.test_plan_rules import DDP, NAME, NOW, T0, cond, condition, observe, raw_pod, run, running_status

RUNNING_SINCE = datetime.fromisoformat(T0.replace("Z", "+00:00"))  # an hour before NOW


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def progress(at: datetime) -> dict[str, Any]:
    return {"progress": {"step": 10, "updateTime": stamp(at)}}


@pytest.mark.parametrize(
    ("running_since", "last_report", "deadline", "expected"),
    [
        (RUNNING_SINCE, None, None, None),  # off by default
        (None, NOW - timedelta(hours=2), 60, None),  # not running: no clock
        (RUNNING_SINCE, None, 3600, (3600.0, False, True, 0.0)),  # silent since every worker ran
        (RUNNING_SINCE, None, 3601, (3600.0, False, False, 1.0)),
        (RUNNING_SINCE, NOW - timedelta(seconds=50), 60, (50.0, True, False, 10.0)),
        (RUNNING_SINCE, NOW - timedelta(seconds=70), 60, (70.0, True, True, 0.0)),
        # A report of an earlier attempt (before this group ran) does not count for this one.
        (RUNNING_SINCE, RUNNING_SINCE - timedelta(seconds=5), 7200, (3600.0, False, False, 3600.0)),
        (RUNNING_SINCE, NOW + timedelta(seconds=5), 60, (0.0, True, False, 60.0)),  # a clock ahead of ours
    ],
)
def test_judge_progress(
    running_since: datetime | None, last_report: datetime | None, deadline: int | None,
    expected: tuple[float, bool, bool, float] | None,
) -> None:
    verdict = judge_progress(NOW, running_since, last_report, deadline)
    got = None if verdict is None else (verdict.silent_seconds, verdict.reported, verdict.stalled, verdict.check_in)
    assert got == expected


def stalled_job(on_stall: str | None = None, backoff_limit: int = 3, **status: Any) -> Any:
    policy: dict[str, Any] = {"progressDeadlineSeconds": 600, "backoffLimit": backoff_limit}
    if on_stall:
        policy["onStall"] = on_stall
    return DDP.run_policy(**policy).status(running_status(**progress(NOW - timedelta(seconds=900)), **status)).obj()


def test_a_silent_trainer_restarts_the_group_by_default_counted_as_a_restart() -> None:
    result = run(stalled_job(), observe(raw_pod(0), raw_pod(1)))
    stalled = condition(result, "Stalled")
    assert stalled and stalled["status"] == "True" and stalled["reason"] == "ProgressDeadlineExceeded"
    assert "no progress report for 900s" in stalled["message"] and "progressDeadlineSeconds: 600s" in stalled["message"]
    restarting = condition(result, "Restarting")
    assert restarting and restarting["reason"] == "ProgressDeadlineExceeded", restarting
    assert result.status.phase == "Restarting" and result.status.restarts == 1 and result.status.current_attempt == 1
    assert sorted(result.delete_pods) == [f"{NAME}-worker-0", f"{NAME}-worker-1"]
    warnings = [(e.type, e.reason) for e in result.events]
    assert warnings == [("Warning", "ProgressDeadlineExceeded"), ("Warning", "Restarting")], result.events


def test_on_stall_fail_fails_the_job_and_stops_its_pods() -> None:
    result = run(stalled_job("Fail"), observe(raw_pod(0), raw_pod(1)))
    failed = condition(result, "Failed")
    assert failed and failed["reason"] == "ProgressDeadlineExceeded" and "onStall: Fail" in failed["message"]
    assert result.status.phase == "Failed" and result.status.restarts == 0
    assert sorted(result.delete_pods) == [f"{NAME}-worker-0", f"{NAME}-worker-1"]
    assert [e.reason for e in result.events] == ["ProgressDeadlineExceeded", "Failed"]


def test_a_restart_on_stall_respects_the_backoff_limit() -> None:
    result = run(stalled_job(backoff_limit=1, restarts=1), observe(raw_pod(0, attempt=1), raw_pod(1, attempt=1)))
    failed = condition(result, "Failed")
    assert failed and failed["reason"] == "BackoffLimitExceeded" and "no progress report" in failed["message"]


def test_a_trainer_that_never_reported_stalls_from_when_every_worker_ran() -> None:
    job = DDP.run_policy(progressDeadlineSeconds=3600).status(running_status()).obj()
    stalled = condition(run(job, observe(raw_pod(0), raw_pod(1))), "Stalled")
    assert stalled and "no progress report since every worker ran for 3600s" in stalled["message"]


@pytest.mark.parametrize(("deadline", "requeue"), [(20, 10.0), (7200, RECHECK_SECONDS)])
def test_a_reporting_trainer_is_checked_again_when_its_deadline_would_run_out(deadline: int, requeue: float) -> None:
    job = DDP.run_policy(progressDeadlineSeconds=deadline).status(
        running_status(**progress(NOW - timedelta(seconds=10)))
    ).obj()
    result = run(job, observe(raw_pod(0), raw_pod(1)))
    assert result.status.phase == "Running" and condition(result, "Stalled") is None
    assert result.requeue_after == requeue and result.events == []


def test_no_clock_runs_before_every_worker_runs() -> None:
    starting = {"phase": "Starting", "startTime": T0, "conditions": [cond("Created"), cond("Running", False)]}
    job = DDP.run_policy(progressDeadlineSeconds=60).status(starting).obj()
    result = run(job, observe(raw_pod(0), raw_pod(1, "Pending")))
    assert condition(result, "Stalled") is None and result.delete_pods == []


@pytest.mark.parametrize("stalled_ago", [timedelta(minutes=30), timedelta(seconds=5)])
def test_a_report_after_the_stall_closes_stalled(stalled_ago: timedelta) -> None:
    """Also a report stamped with the stall's own second: a restart on a fast node reports within it."""
    since = NOW - stalled_ago
    status = running_status(**progress(NOW - timedelta(seconds=5)))
    status["conditions"].append(cond("Stalled", True, "ProgressDeadlineExceeded", stamp(since)))
    job = DDP.run_policy(progressDeadlineSeconds=600).status(status).obj()
    result = run(job, observe(raw_pod(0), raw_pod(1)))
    stalled = condition(result, "Stalled")
    assert stalled and stalled["status"] == "False" and stalled["reason"] == "ProgressResumed"
    assert [(e.type, e.reason) for e in result.events] == [("Normal", "ProgressResumed")]
    assert result.status.phase == "Running" and result.delete_pods == []


def test_a_stall_not_followed_by_a_report_stays_stalled_through_the_restart() -> None:
    since = NOW - timedelta(minutes=1)
    restarting = {"phase": "Restarting", "restarts": 1, "startTime": T0, **progress(NOW - timedelta(minutes=20)),
                  "conditions": [cond("Created", False), cond("Running", False), cond("Restarting"),
                                 cond("Stalled", True, "ProgressDeadlineExceeded", stamp(since))]}
    job = DDP.run_policy(progressDeadlineSeconds=600).status(restarting).obj()
    stalled = condition(run(job, observe()), "Stalled")
    assert stalled and stalled["status"] == "True"
