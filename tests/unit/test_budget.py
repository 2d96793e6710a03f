"""GPU budgets, the pure part (policy/budget.py): calendar periods, GPU-hours of jobs with several
workers and GPUs, what other jobs are charged, and the verdict, including a policy the operator
cannot read. The cluster test (tests/integration/test_budget.py) covers the Day period end to end."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from kubetrain.api import TrainingJob, default_catalogue
from kubetrain.api.budget import BudgetPeriod
from kubetrain.api.status import Reason
from kubetrain.policy.budget import (
    BudgetFacts,
    budget_usage,
    charged,
    estimate,
    judge_budget,
    period_start,
    used_gpu_hours,
)
from tests.builders import JobBuilder

CATALOGUE = default_catalogue()
A100_PRICE = 2.5  # the built-in catalogue's a100-eu price per GPU-hour
# A Wednesday afternoon, UTC.
NOW = datetime(2026, 12, 2, 15, 30, tzinfo=timezone.utc)
NAMESPACE = "team"


def at(days: float = 0, hours: float = 0) -> datetime:
    """NOW shifted by days and hours (negative: earlier)."""
    return NOW + timedelta(days=days, hours=hours)


# A raw a100-eu job of 1 worker x 1 GPU, with a deadline of an hour and no condition yet.
GPU_JOB = JobBuilder.eu("job", NAMESPACE).named("job").deadline(3600).status(conditions=[])
TWO_BY_TWO = GPU_JOB.spec(workers=2).resources(gpus=2)


def policy(gpu_hours: float, period: str, name: str = "limit") -> dict[str, Any]:
    return {
        "apiVersion": "kubetrain.io/v1alpha1", "kind": "BudgetPolicy", "metadata": {"name": name},
        "spec": {"namespaces": [NAMESPACE], "gpuHours": gpu_hours, "period": period},
    }


def facts(*policies: dict[str, Any], jobs: tuple[dict[str, Any], ...] = ()) -> BudgetFacts:
    return BudgetFacts(namespace=NAMESPACE, policies=list(policies), jobs=list(jobs))


@pytest.mark.parametrize(
    ("period", "now", "start"),
    [
        (BudgetPeriod.DAY, NOW, datetime(2026, 12, 2, tzinfo=timezone.utc)),
        (BudgetPeriod.WEEK, NOW, datetime(2026, 11, 30, tzinfo=timezone.utc)),  # the Monday before
        (
            BudgetPeriod.WEEK,
            datetime(2026, 12, 6, 23, 59, tzinfo=timezone.utc),
            datetime(2026, 11, 30, tzinfo=timezone.utc),
        ),
        (
            BudgetPeriod.WEEK,
            datetime(2026, 11, 30, 0, 0, tzinfo=timezone.utc),
            datetime(2026, 11, 30, tzinfo=timezone.utc),
        ),
        (BudgetPeriod.MONTH, NOW, datetime(2026, 12, 1, tzinfo=timezone.utc)),
        (
            BudgetPeriod.MONTH,
            datetime(2026, 3, 31, 23, 0, tzinfo=timezone.utc),
            datetime(2026, 3, 1, tzinfo=timezone.utc),
        ),
    ],
    ids=["day", "week-wednesday", "week-sunday-night", "week-monday-midnight", "month", "month-last-day"],
)
def test_period_starts_at_the_calendar_boundary_in_utc(period: BudgetPeriod, now: datetime, start: datetime) -> None:
    assert period_start(period, now) == start


def test_estimate_multiplies_workers_gpus_deadline_and_the_pools_price() -> None:
    cost = estimate(GPU_JOB.spec(workers=3).resources(gpus=2).deadline(1800).obj().spec, CATALOGUE)
    assert cost.estimated_gpu_hours == 3.0  # 3 workers x 2 GPUs x 0.5 h
    assert cost.estimated_cost == 3.0 * A100_PRICE
    assert estimate(GPU_JOB.deadline(None).obj().spec, CATALOGUE).estimated_gpu_hours is None
    assert estimate(GPU_JOB.resources(gpus=0).deadline(None).obj().spec, CATALOGUE).estimated_gpu_hours == 0.0


def test_used_gpu_hours_count_every_gpu_of_every_worker_within_the_period() -> None:
    finished = GPU_JOB.spec(workers=3).resources(gpus=2).started(at(hours=-2)).completed(at(hours=-1.5)).obj()
    assert used_gpu_hours(finished.spec, finished.status, NOW) == pytest.approx(3.0)  # 6 GPUs x 0.5 h
    running = GPU_JOB.spec(workers=2).resources(gpus=4).started(at(hours=-0.25)).obj()
    assert used_gpu_hours(running.spec, running.status, NOW) == pytest.approx(2.0)  # 8 GPUs x 0.25 h, until now
    # A run that began before the period counts only its part inside it.
    overnight = GPU_JOB.spec(workers=2).resources(gpus=1).started(at(days=-1)).completed(at(hours=-14.5)).obj()
    assert used_gpu_hours(overnight.spec, overnight.status, NOW, since=at(hours=-15.5)) == pytest.approx(2.0)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (TWO_BY_TWO.conditions("Succeeded", at=NOW).started(at(hours=-3)).completed(at(hours=-2.5)).manifest(), 2.0),
        (TWO_BY_TWO.conditions("Failed", at=NOW).started(at(hours=-3)).completed(at(hours=-2.75)).manifest(), 1.0),
        (TWO_BY_TWO.deadline(7200).conditions("BudgetAvailable", at=NOW).started(at(hours=-0.5)).manifest(), 8.0),
        (TWO_BY_TWO.conditions("BudgetAvailable", at=NOW).manifest(), 4.0),
        (TWO_BY_TWO.manifest(), 0.0),
    ],
    ids=["succeeded-used", "failed-used", "running-holds-its-estimate", "admitted-not-started", "not-admitted"],
)
def test_other_jobs_are_charged_what_they_used_or_hold(raw: dict[str, Any], expected: float) -> None:
    assert charged(raw, CATALOGUE, NOW, since=at(days=-1)) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("period", "finished_days_ago", "allowed"),
    [
        ("Day", 1, True), ("Day", 0, False),
        ("Week", 3, True), ("Week", 2, False),  # Wednesday: 3 days ago is last week's Sunday
        ("Month", 2, True), ("Month", 1, False),  # December 2nd: 2 days ago is November
    ],
)
def test_usage_before_the_current_period_is_not_counted(period: str, finished_days_ago: int, allowed: bool) -> None:
    """Another job used 4 of 5 GPU-hours (2 workers x 2 GPUs for an hour) at midnight plus one
    hour, some days ago; the new 1x2 GPU job for an hour fits only once that usage is in an
    earlier period."""
    midnight = NOW.replace(hour=0, minute=0) - timedelta(days=finished_days_ago)
    earlier = TWO_BY_TWO.named("earlier").conditions("Succeeded", at=NOW).started(midnight)
    used = earlier.completed(midnight + timedelta(hours=1)).manifest()
    verdict = judge_budget(
        GPU_JOB.resources(gpus=2).obj(), facts(policy(5, period), jobs=(used,)), CATALOGUE, NOW
    )
    assert verdict.allowed is allowed, verdict.message
    assert verdict.reason == (Reason.WITHIN_BUDGET if allowed else Reason.BUDGET_EXCEEDED)
    if not allowed:
        assert f"1 of 5 GPU-hours left this {period.lower()}" in verdict.message
        assert "1 workers x 2 GPUs x 3600s" in verdict.message


def test_a_policy_the_operator_cannot_read_refuses_gpu_jobs_but_not_cpu_jobs() -> None:
    broken = policy(5, "Fortnight", name="typo")
    refused = judge_budget(GPU_JOB.obj(), facts(broken), CATALOGUE, NOW)
    assert not refused.allowed and refused.reason == Reason.BUDGET_EXCEEDED
    assert "BudgetPolicy typo cannot be read" in refused.message and "ask the admin" in refused.message
    cpu_only = judge_budget(GPU_JOB.resources(gpus=0).deadline(None).obj(), facts(broken), CATALOGUE, NOW)
    assert cpu_only.allowed


def test_gpu_job_without_deadline_is_refused_only_where_a_budget_applies() -> None:
    unbounded = GPU_JOB.deadline(None).obj()
    verdict = judge_budget(unbounded, facts(policy(100, "Month")), CATALOGUE, NOW)
    assert (verdict.allowed, verdict.reason) == (False, Reason.DEADLINE_REQUIRED)
    assert "spec.runPolicy.activeDeadlineSeconds is required" in verdict.message
    elsewhere = policy(100, "Month")
    elsewhere["spec"]["namespaces"] = ["other-team"]
    assert judge_budget(unbounded, facts(elsewhere), CATALOGUE, NOW).reason == Reason.NO_BUDGET


def test_the_job_itself_is_not_counted_against_its_own_budget() -> None:
    """The reconcile re-judges a job already in the namespace's list: its own reservation must
    not crowd it out."""
    admitted = GPU_JOB.named("me").resources(gpus=2).conditions("BudgetAvailable", at=NOW).manifest()
    verdict = judge_budget(
        TrainingJob.model_validate(admitted), facts(policy(2, "Day"), jobs=(admitted,)), CATALOGUE, NOW
    )
    assert verdict.allowed, verdict.message


def test_budget_usage_counts_what_was_used_and_what_admission_would_still_grant() -> None:
    """For the metrics: a finished 1 GPU-hour and a running job holding 4 of its estimate, under a
    10 GPU-hour daily budget and a monthly one; a policy selecting another namespace, and one the
    operator cannot read, are left out."""
    jobs = (
        TWO_BY_TWO.named("done").conditions("Succeeded", at=NOW).started(at(hours=-3)).completed(at(hours=-2.75))
        .manifest(),
        TWO_BY_TWO.named("running").conditions("BudgetAvailable", at=NOW).started(at(hours=-0.5)).manifest(),
    )
    elsewhere = {**policy(100, "Day", "elsewhere"), "spec": {"namespaces": ["other"], "gpuHours": 100}}
    unreadable = {**policy(1, "Day", "broken"), "spec": {"namespaces": [NAMESPACE]}}
    usages = budget_usage(facts(policy(10, "Day", "daily"), policy(50, "Month", "monthly"), elsewhere, unreadable,
                                jobs=jobs), CATALOGUE, NOW)
    assert [(u.policy, u.gpu_hours) for u in usages] == [("daily", 10), ("monthly", 50)]
    assert {u.namespace for u in usages} == {NAMESPACE}
    assert usages[0].used == pytest.approx(1.0 + 2.0)  # 4 GPUs x 0.25 h, 4 GPUs x 0.5 h so far
    assert usages[0].remaining == pytest.approx(10 - 1.0 - 4.0)  # the running job holds its whole estimate
    assert usages[1].remaining == pytest.approx(50 - 5.0)
