"""Budgets that queue (BudgetPolicy onExhaustion: Queue): the verdict queues only when every
refusing policy queues, the webhook admits such a job, and the planner holds it Queued (reason
BudgetExhausted, a Warning-free trail, no pod) until a verdict lets it start. The cluster test
(tests/integration/test_budget.py) raises a budget under a queued job."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from kubetrain.api.budget import BudgetPeriod
from kubetrain.api.events import EventType
from kubetrain.api.status import Phase, Reason
from kubetrain.plan.budget import QUEUED_RECHECK_SECONDS
from kubetrain.plan.conditions import derive_phase
from kubetrain.plan.draft import Plan
from kubetrain.plan.job import plan
from kubetrain.policy.admission import admit_budget
from kubetrain.policy.budget import BudgetVerdict, judge_budget, next_period_start
from tests.unit.test_budget import CATALOGUE, GPU_JOB, NOW, facts, policy
from tests.unit.test_plan_rules import DDP, SETTINGS, children, observe
from tests.unit.test_plan_rules import NOW as PLAN_NOW

OTHER = GPU_JOB.named("other").conditions("BudgetAvailable", at=NOW).manifest()  # holds 1 GPU-hour


def queueing(gpu_hours: float, name: str = "limit", period: str = "Day") -> dict[str, Any]:
    body = policy(gpu_hours, period, name)
    body["spec"]["onExhaustion"] = "Queue"
    return body


@pytest.mark.parametrize(("period", "renews"), [
    (BudgetPeriod.DAY, datetime(2026, 12, 3, tzinfo=timezone.utc)),
    (BudgetPeriod.WEEK, datetime(2026, 12, 7, tzinfo=timezone.utc)),  # the next Monday
    (BudgetPeriod.MONTH, datetime(2027, 1, 1, tzinfo=timezone.utc)),
])
def test_the_next_period_starts_at_the_next_calendar_boundary(period: BudgetPeriod, renews: datetime) -> None:
    assert next_period_start(period, NOW) == renews


def test_a_job_over_a_queueing_budget_queues_until_the_period_renews() -> None:
    verdict = judge_budget(GPU_JOB.obj(), facts(queueing(1.5), jobs=(OTHER,)), CATALOGUE, NOW)
    assert not verdict.allowed and verdict.queue and verdict.reason == Reason.BUDGET_EXCEEDED
    assert verdict.retry_at == datetime(2026, 12, 3, tzinfo=timezone.utc)
    assert "0.5 of 1.5 GPU-hours left this day" in verdict.message


@pytest.mark.parametrize(("policies", "deadline"), [
    ((queueing(1.5), policy(1.5, "Day", "strict")), 3600),  # one refusing policy rejects: that wins
    ((queueing(100),), None),  # no deadline: no budget ever fits an unbounded cost
], ids=["a-rejecting-policy-refuses-too", "deadline-required"])
def test_what_can_never_fit_is_rejected_even_under_a_queueing_policy(
    policies: tuple[dict[str, Any], ...], deadline: int | None
) -> None:
    verdict = judge_budget(GPU_JOB.deadline(deadline).obj(), facts(*policies, jobs=(OTHER,)), CATALOGUE, NOW)
    assert not verdict.allowed and not verdict.queue


def test_the_webhook_admits_a_new_job_a_queueing_budget_refuses_but_not_an_edit() -> None:
    over = facts(queueing(1.5), jobs=(OTHER,))
    assert admit_budget(GPU_JOB.obj(), over, CATALOGUE, NOW) is None
    old = GPU_JOB.conditions("BudgetAvailable", at=NOW).obj()
    grown = GPU_JOB.conditions("BudgetAvailable", at=NOW).spec(workers=4).obj()
    assert "refused by the GPU budget" in (admit_budget(grown, over, CATALOGUE, NOW, old) or "")


QUEUED = BudgetVerdict(
    allowed=False, reason=Reason.BUDGET_EXCEEDED, message="BudgetPolicy limit: namespace ns has 0 of 1 GPU-hours left",
    queue=True, retry_at=datetime(2025, 1, 2, tzinfo=timezone.utc),
)
ALLOWED = BudgetVerdict(allowed=True, reason=Reason.WITHIN_BUDGET, message="needs up to 1 GPU-hours; within budget")


def judged(status: dict[str, Any], verdict: BudgetVerdict) -> Plan:
    job = DDP.deadline(3600).status(status).obj()
    return plan(job, observe(service=False), children(job), CATALOGUE, SETTINGS, PLAN_NOW, budget=verdict)


def test_a_queued_job_shows_why_creates_nothing_and_checks_again() -> None:
    result = judged({}, QUEUED)

    status = result.status
    assert status.phase == Phase.QUEUED and status.start_time is None and result.create == []
    conditions = {c.type: c for c in status.conditions}
    assert conditions["Queued"].reason == Reason.BUDGET_EXHAUSTED
    assert "waiting for GPU budget: BudgetPolicy limit" in conditions["Queued"].message
    assert "renews at 2025-01-02T00:00:00Z" in conditions["Queued"].message
    assert conditions["Running"].status == "False" and conditions["Running"].reason == Reason.BUDGET_EXHAUSTED
    assert conditions["BudgetAvailable"].reason == Reason.BUDGET_EXCEEDED and "Failed" not in conditions
    assert {e.type for e in result.events} == {EventType.NORMAL}
    assert {e.reason for e in result.events} == {"Queued", Reason.BUDGET_EXCEEDED}
    assert result.requeue_after == QUEUED_RECHECK_SECONDS
    assert status.cost is not None and status.cost.estimated_gpu_hours == 2.0  # the estimate shows already


def test_a_queued_job_starts_once_it_fits() -> None:
    queued = judged({}, QUEUED).status.to_k8s()

    result = judged(queued, ALLOWED)

    conditions = {c.type: c for c in result.status.conditions}
    assert conditions["Queued"].status == "False" and conditions["Queued"].reason == Reason.ADMITTED
    assert "Running" not in conditions  # the queue's reason leaves the Reason column
    assert result.status.phase == Phase.PENDING
    assert [o["kind"] for o in result.create].count("Pod") == 2
    assert all(e.type == EventType.NORMAL for e in result.events)


def test_suspension_outranks_the_queue() -> None:
    queued = judged({}, QUEUED).status.conditions
    suspended = [*queued, queued[0].model_copy(update={"type": "Suspended", "status": "True"})]
    assert derive_phase(suspended) == Phase.SUSPENDED


# First come, first served among the jobs that wait for a budget (policy.budget.waiting_ahead).
def waiting(name: str, minutes_ago: int, *status: str) -> Any:
    """A 1 GPU-hour job created `minutes_ago` before NOW, with these conditions True."""
    return GPU_JOB.named(name).created(NOW - timedelta(minutes=minutes_ago)).conditions(*status, at=NOW)


def test_an_older_waiting_job_goes_first_and_a_younger_one_counts_it() -> None:
    """2 GPU-hours left (OTHER holds 1 of 3): the older queued job and the younger one need 1 each,
    so both fit; with 1.5 left the younger waits for the older, whose own verdict is not written
    yet, so the two cannot both take the same GPU-hours."""
    older, younger = waiting("older", 10), waiting("younger", 5)
    jobs = (OTHER, older.manifest(), younger.manifest())
    assert judge_budget(younger.obj(), facts(queueing(3), jobs=jobs), CATALOGUE, NOW).allowed
    assert judge_budget(older.obj(), facts(queueing(2.5), jobs=jobs), CATALOGUE, NOW).allowed

    verdict = judge_budget(younger.obj(), facts(queueing(2.5), jobs=jobs), CATALOGUE, NOW)
    assert not verdict.allowed and verdict.queue
    assert "1 older job(s) waiting for this budget go first (older: up to 1 GPU-hours)" in verdict.message
    # A new job (not created yet: the webhook, `kubetrain submit`, a sweep's next trial) comes last.
    assert "go first (older, younger: up to 2" in judge_budget(GPU_JOB.obj(), facts(queueing(3), jobs=jobs),
                                                               CATALOGUE, NOW).message


@pytest.mark.parametrize("other", [
    waiting("started", 10, "BudgetAvailable"),  # admitted: counted as holding its estimate, not as waiting
    waiting("done", 10, "Failed"),
    waiting("paused", 10).run_policy(suspend=True),
    waiting("unbounded", 10).deadline(None),  # refused outright, never starts
    waiting("huge", 10).spec(workers=8),  # 8 GPU-hours: more than the whole budget, never starts
], ids=["admitted", "finished", "suspended", "no-deadline", "larger-than-the-budget"])
def test_only_jobs_that_may_still_start_wait_ahead(other: Any) -> None:
    younger = waiting("younger", 5)
    verdict = judge_budget(younger.obj(), facts(queueing(2.5), jobs=(other.manifest(), younger.manifest())),
                           CATALOGUE, NOW)
    assert "go first" not in verdict.message


def test_a_job_larger_than_the_whole_budget_is_refused_even_under_a_queueing_policy() -> None:
    verdict = judge_budget(GPU_JOB.spec(workers=4).obj(), facts(queueing(3)), CATALOGUE, NOW)
    assert not verdict.allowed and not verdict.queue
    assert "more than the whole budget of 3 GPU-hours per day, so it can never fit" in verdict.message
