"""TrainingSchedule planning, the pure part (plan/schedule.py): cron expressions and macros besides
@every, missed runs, and suspension. The cluster test (tests/integration/test_scheduled_retraining.py)
runs an @every schedule end to end."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from kubetrain.api.schedule import TrainingSchedule
from kubetrain.plan.schedule import Cadence, ScheduleError, plan_schedule
from tests.builders import EU_SPEC

CREATED = datetime(2026, 12, 1, 10, 0, 0, tzinfo=timezone.utc)  # a Tuesday


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def schedule(
    cron: str, last: datetime | None = None, suspend: bool = False, status: dict[str, Any] | None = None
) -> TrainingSchedule:
    """A schedule named `nightly` created at CREATED, whose last job was scheduled at `last`."""
    recorded = dict(status or {})
    if last is not None:
        recorded.update(lastScheduleTime=stamp(last), lastJob=f"nightly-{last:%Y%m%d%H%M%S}")
    return TrainingSchedule.model_validate({
        "metadata": {"name": "nightly", "namespace": "team", "uid": "uid-s", "creationTimestamp": stamp(CREATED)},
        "spec": {"schedule": cron, "suspend": suspend, "jobTemplate": {"spec": EU_SPEC}},
        "status": recorded,
    })


def utc(day: int, hour: int, minute: int = 0, second: int = 0, month: int = 12) -> datetime:
    return datetime(2026, month, day, hour, minute, second, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("text", "after", "expected"),
    [
        ("0 3 * * *", utc(1, 10), utc(2, 3)),
        ("*/15 * * * *", utc(1, 10, 7), utc(1, 10, 15)),
        ("30 2 * * 1-5", utc(4, 3), utc(7, 2, 30)),  # Friday after 02:30 -> Monday
        ("@hourly", utc(1, 10, 0, 1), utc(1, 11)),
        ("@daily", utc(1, 10), utc(2, 0)),
        ("@weekly", utc(1, 10), utc(6, 0)),  # Sunday midnight, as cron's 0 0 * * 0
        ("@monthly", utc(1, 10), datetime(2027, 1, 1, tzinfo=timezone.utc)),
        ("@every 90m", utc(1, 10), utc(1, 11, 30)),
    ],
)
def test_the_next_time_of_cron_expressions_and_macros(text: str, after: datetime, expected: datetime) -> None:
    assert Cadence.parse(text).next_after(after, CREATED) == expected


@pytest.mark.parametrize(
    "text", ["0 3 * *", "61 * * * *", "@fortnightly", "@every 4s", "@every 5d", "daily", "0 3 * * * *"]
)
def test_what_is_not_a_schedule_is_refused_with_the_accepted_forms(text: str) -> None:
    with pytest.raises(ScheduleError, match=r"spec.schedule|at least 5s"):
        Cadence.parse(text)


def test_a_due_cron_schedule_creates_the_job_named_after_its_time() -> None:
    plan = plan_schedule(schedule("0 3 * * *"), utc(2, 3, 0, 20))
    assert plan.create is not None
    assert plan.create["metadata"]["name"] == "nightly-20261202030000"
    assert plan.create["metadata"]["ownerReferences"][0]["uid"] == "uid-s"
    assert plan.status.last_schedule_time == utc(2, 3)
    assert plan.status.next_schedule_time == utc(3, 3)
    assert plan.requeue_after == (utc(3, 3) - utc(2, 3, 0, 20)).total_seconds()


def test_before_the_cron_time_nothing_is_created_and_the_wake_up_is_at_that_time() -> None:
    plan = plan_schedule(schedule("0 3 * * *", last=utc(2, 3)), utc(2, 22))
    assert plan.create is None
    assert plan.status.next_schedule_time == utc(3, 3)
    assert plan.requeue_after == 5 * 3600


def test_missed_runs_are_not_caught_up_one_by_one() -> None:
    """Like a CronJob: an operator down for three nights runs only the latest missed time."""
    plan = plan_schedule(schedule("@daily", last=utc(2, 0)), utc(5, 9))
    assert plan.create is not None and plan.create["metadata"]["name"] == "nightly-20261205000000"
    assert plan.status.next_schedule_time == utc(6, 0)


def test_a_suspended_schedule_creates_nothing_however_overdue_and_resumes_with_the_latest_time() -> None:
    overdue = utc(9, 12)
    suspended = plan_schedule(schedule("0 3 * * *", last=utc(2, 3), suspend=True), overdue)
    assert suspended.create is None and suspended.requeue_after is None
    assert suspended.status.next_schedule_time is None
    resumed = plan_schedule(schedule("0 3 * * *", last=utc(2, 3)), overdue)
    assert resumed.create is not None and resumed.create["metadata"]["name"] == "nightly-20261209030000"


def test_an_invalid_schedule_warns_once_and_creates_nothing() -> None:
    first = plan_schedule(schedule("every night"), utc(2, 3))
    assert first.create is None and first.status.message and "is not a schedule" in first.status.message
    assert [e.reason for e in first.events] == ["InvalidSchedule"]
    again = plan_schedule(schedule("every night", status={"message": first.status.message}), utc(2, 4))
    assert again.events == []


def test_every_interval_counts_from_the_schedules_creation() -> None:
    plan = plan_schedule(schedule("@every 2h", last=CREATED + timedelta(hours=2)), utc(1, 15))
    assert plan.create is not None and plan.create["metadata"]["name"] == "nightly-20261201140000"
    assert plan.status.next_schedule_time == utc(1, 16)
