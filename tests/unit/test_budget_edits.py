"""Budgets hold for edits too: an update that raises what a job can cost (spec.workers, GPUs, a
longer or removed activeDeadlineSeconds) is judged at admission, and a spec.workers raise of a
started job is judged again by the reconcile before the group rolls into the larger attempt."""

from __future__ import annotations

from kubetrain.api import TrainingJob
from kubetrain.api.status import Reason
from kubetrain.plan.decision import Needs
from kubetrain.plan.job import plan
from kubetrain.policy.admission import admit_budget
from kubetrain.policy.budget import BudgetVerdict
from tests.unit.test_budget import CATALOGUE, GPU_JOB, NOW, facts, policy
from tests.unit.test_plan_rules import DDP, SETTINGS, children, observe, raw_pod, running_status
from tests.unit.test_plan_rules import NOW as PLAN_NOW

OTHER = GPU_JOB.named("other").deadline(1800).conditions("BudgetAvailable", at=NOW).manifest()  # holds 0.5 GPU-hours
BUDGET = facts(policy(2, "Day"), jobs=(OTHER,))


def edited(workers: int = 1, deadline: int | None = 3600) -> tuple[TrainingJob, TrainingJob]:
    """The admitted 1 worker x 1 GPU x 3600s job (1 GPU-hour), and it with these workers and deadline."""
    old = GPU_JOB.named("me").conditions("BudgetAvailable", at=NOW)
    return old.obj(), old.spec(workers=workers).deadline(deadline).obj()


def test_raising_workers_past_the_budget_is_refused_naming_what_is_left() -> None:
    old, new = edited(workers=2)
    refusal = admit_budget(new, BUDGET, CATALOGUE, NOW, old)
    assert refusal is not None and "refused by the GPU budget" in refusal
    assert "has 1.5 of 2 GPU-hours left" in refusal and "needs up to 2" in refusal, refusal
    old, new = edited(workers=4)
    assert "more than the whole budget of 2 GPU-hours per day" in (admit_budget(new, BUDGET, CATALOGUE, NOW, old) or "")


def test_raising_or_removing_the_deadline_past_the_budget_is_refused() -> None:
    old, longer = edited(deadline=2 * 3600)
    assert "has 1.5 of 2 GPU-hours left" in (admit_budget(longer, BUDGET, CATALOGUE, NOW, old) or "")
    old, unbounded = edited(deadline=None)
    assert "activeDeadlineSeconds is required" in (admit_budget(unbounded, BUDGET, CATALOGUE, NOW, old) or "")


def test_an_edit_that_fits_or_lowers_the_cost_is_admitted() -> None:
    old, within = edited(deadline=5400)  # 1.5 GPU-hours: exactly what is left
    assert admit_budget(within, BUDGET, CATALOGUE, NOW, old) is None
    spent = facts(policy(0.1, "Day"), jobs=(OTHER,))  # over budget already: lowering must still pass
    old, fewer = edited(deadline=600)
    assert admit_budget(fewer, spent, CATALOGUE, NOW, old) is None


def _refused() -> BudgetVerdict:
    return BudgetVerdict(
        allowed=False,
        reason=Reason.BUDGET_EXCEEDED,
        message="BudgetPolicy limit: namespace team has 0.5 of 2 GPU-hours left this day",
    )


def test_a_workers_raise_that_no_longer_fits_fails_the_job_instead_of_rolling() -> None:
    job_ = DDP.spec(workers=4).status(running_status(attempt=0)).obj()
    pods = [raw_pod(i, "Running", workers=2) for i in range(2)]
    result = plan(job_, observe(*pods), children(job_), CATALOGUE, SETTINGS, PLAN_NOW, budget=_refused())
    failed = next(c for c in result.status.conditions if c.type == "Failed")
    assert failed.status == "True" and failed.reason == Reason.BUDGET_EXCEEDED
    assert "spec.workers raised from 2 to 4" in failed.message and "0.5 of 2 GPU-hours left" in failed.message
    assert result.status.attempt in (None, 0) and not [o for o in result.create if o["kind"] == "Pod"]
    assert sorted(result.delete_pods) == sorted(p["metadata"]["name"] for p in pods)


def test_a_workers_cut_rolls_whatever_the_budget_says() -> None:
    job_ = DDP.spec(workers=1).status(running_status()).obj()
    pods = observe(*[raw_pod(i, "Running", workers=2) for i in range(2)])
    result = plan(job_, pods, children(job_), CATALOGUE, SETTINGS, PLAN_NOW, budget=_refused())
    assert result.status.phase == "Restarting" and result.status.attempt == 1


def test_an_edit_of_a_started_job_makes_the_reconcile_fetch_the_budget() -> None:
    def needs(observed: int) -> bool:
        raw = DDP.generation(2).status({**running_status(), "observedGeneration": observed}).obj().model_dump(
            by_alias=True, exclude_none=True, mode="json")
        return Needs.of(raw, PLAN_NOW, []).budget

    assert needs(1) and not needs(2)
