"""TrainingSweep planning, the pure part (plan/sweep.py, plan/search.py, render/trial.py): drawing and recording
trials, following their jobs, median pruning, the cost cap and the namespace budget, and the
crash between recording a trial and creating its job. The cluster test is
tests/integration/test_sweeps.py."""

from __future__ import annotations

import copy
import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from kubetrain.api import default_catalogue
from kubetrain.api.job import TrainingJob
from kubetrain.api.provenance import Provenance
from kubetrain.api.sweep import TrainingSweep, TrialState
from kubetrain.plan.draft import Draft
from kubetrain.plan.promotion import PromotionFacts, apply_promotion
from kubetrain.plan.provenance import sweep_provenance
from kubetrain.plan.search import SearchSpaceError, suggest
from kubetrain.plan.sweep import SweepPlan, plan_sweep
from kubetrain.policy.budget import BudgetFacts
from kubetrain.render.trial import trial_spec
from tests.builders import EU_SPEC

NOW = datetime(2026, 12, 1, 10, 0, 0, tzinfo=timezone.utc)
CATALOGUE = default_catalogue()
LOCAL_SPEC: dict[str, Any] = {
    "workers": 1,
    "nodePool": "local",
    "resources": {"cpu": "1", "memory": "1Gi"},
    "task": {"type": "tabular-classification", "epochs": 3, "model": {"hiddenSizes": [64]}},
    "dataset": {"uri": "file:///data/tabular.csv"},
    "output": {"uri": "file:///out/sweep"},
}
SPACE = [
    {"path": "learningRate", "type": "logUniform", "min": 1e-4, "max": 0.3},
    {"path": "model.hiddenSizes.0", "type": "int", "min": 4, "max": 128},
]


def sweep(status: dict[str, Any] | None = None, template: dict[str, Any] | None = None, **spec: Any) -> TrainingSweep:
    body: dict[str, Any] = {
        "jobTemplate": {"spec": template or LOCAL_SPEC},
        "parameters": SPACE,
        "objective": {"metric": "accuracy"},
        "maxTrials": 4,
        "parallelTrials": 2,
        **spec,
    }
    return TrainingSweep.model_validate(
        {"metadata": {"name": "s", "namespace": "team", "uid": "uid-s"}, "spec": body, "status": status or {}}
    )


def plan(current: TrainingSweep, jobs: dict[str, dict[str, Any]] | None = None,
         budget: BudgetFacts | None = None, now: datetime = NOW) -> SweepPlan:
    return plan_sweep(current, jobs or {}, budget or BudgetFacts(namespace="team"), CATALOGUE, now)


def advance(current: TrainingSweep, result: SweepPlan) -> TrainingSweep:
    """The sweep as the next reconcile reads it: the status the plan wrote."""
    return current.model_copy(update={"status": result.status})


def job_with(created: dict[str, Any], phase: str, metrics: dict[str, float] | None = None,
             progress: dict[str, Any] | None = None, started: datetime | None = None) -> dict[str, Any]:
    job = copy.deepcopy(created)
    job["metadata"]["uid"] = f"uid-{job['metadata']['name']}"
    status: dict[str, Any] = {"phase": phase, "metrics": metrics or {}}
    if progress is not None:
        status["progress"] = progress
    if started is not None:
        status["startTime"] = started.strftime("%Y-%m-%dT%H:%M:%SZ")
    if phase in ("Succeeded", "Failed"):
        status["completionTime"] = (started or NOW).strftime("%Y-%m-%dT%H:%M:%SZ")
        status["conditions"] = [{"type": phase, "status": "True", "reason": phase, "message": "done",
                                 "lastTransitionTime": "2026-12-01T10:00:00Z"}]
    job["status"] = status
    return job


def test_first_reconcile_records_parallel_trials_and_creates_their_jobs() -> None:
    result = plan(sweep())
    trials = result.status.trials
    assert [t.job for t in trials] == ["s-t0", "s-t1"] and all(t.state == TrialState.PENDING for t in trials)
    assert [j["metadata"]["name"] for j in result.create] == ["s-t0", "s-t1"]
    job = result.create[0]
    assert job["metadata"]["ownerReferences"][0]["kind"] == "TrainingSweep"
    assert job["metadata"]["labels"]["kubetrain.io/sweep"] == "s"
    task = job["spec"]["task"]
    assert task["learningRate"] == trials[0].parameters["learningRate"]
    assert task["model"]["hiddenSizes"] == [trials[0].parameters["model.hiddenSizes.0"]]
    assert job["spec"]["output"]["uri"] == "file:///out/sweep/s-t0"  # a trial never resumes another's checkpoint
    assert result.status.phase == "Running" and result.status.reason == "Searching"
    assert result.status.cost.estimated_gpu_hours == 0.0 and "no BudgetPolicy selects" in str(result.status.cost.budget)


def test_a_crash_after_recording_creates_the_same_jobs_not_new_trials() -> None:
    first = plan(sweep())
    again = plan(advance(sweep(), first))  # status written, no job created before the crash
    assert again.status.trials == first.status.trials
    assert again.create == first.create


def test_the_same_records_draw_the_same_trial() -> None:
    spec = sweep(algorithm="TPE").spec
    assert suggest(spec, [], 3) == suggest(spec, [], 3)
    assert suggest(spec, [], 3) != suggest(spec, [], 4)


def test_finished_trials_are_scored_and_the_next_ones_drawn() -> None:
    first = plan(sweep())
    jobs = {
        "s-t0": job_with(first.create[0], "Succeeded", {"accuracy": 0.8}),
        "s-t1": job_with(first.create[1], "Failed"),
    }
    second = plan(advance(sweep(), first), jobs)
    states = [t.state for t in second.status.trials]
    assert states == ["Succeeded", "Failed", "Pending", "Pending"]
    assert second.status.best is not None and second.status.best.job == "s-t0" and second.status.best.value == 0.8
    assert [j["metadata"]["name"] for j in second.create] == ["s-t2", "s-t3"]
    assert {e.reason for e in second.events} >= {"TrialFinished", "TrialCreated"}


def test_the_sweep_succeeds_when_every_trial_ended() -> None:
    current = sweep(maxTrials=2)
    first = plan(current)
    jobs = {j["metadata"]["name"]: job_with(j, "Succeeded", {"accuracy": a}) for j, a in zip(first.create, (0.7, 0.9))}
    done = plan(advance(current, first), jobs)
    assert done.status.phase == "Succeeded" and done.status.reason == "Completed"
    assert done.status.best is not None and done.status.best.job == "s-t1"
    assert done.status.completed == "2/2" and done.requeue_after is None and not done.create


def test_a_trial_behind_the_median_is_pruned_and_its_job_deleted() -> None:
    current = sweep(parallelTrials=3, pruning={"policy": "Median", "warmupEpochs": 1, "minTrials": 2})
    first = plan(current)
    started = NOW - timedelta(minutes=30)
    jobs = {
        j["metadata"]["name"]: job_with(j, "Running", progress={"epoch": 2, "metrics": {"accuracy": a}},
                                        started=started)
        for j, a in zip(first.create, (0.9, 0.85, 0.5))
    }
    second = plan(advance(current, first), jobs)
    pruned = second.status.trials[2]
    assert pruned.state == TrialState.PRUNED and "behind the median 0.875" in str(pruned.message)
    assert pruned.intermediate == {"2": 0.5}
    assert second.delete == [("s-t2", "uid-s-t2")]
    assert [t.state for t in second.status.trials[:2]] == ["Running", "Running"]
    # Frozen: later reconciles keep its GPU-hours as they were when it was pruned.
    later = plan(advance(current, second), {k: v for k, v in jobs.items() if k != "s-t2"}, now=NOW + timedelta(hours=1))
    assert later.status.trials[2] == pruned


def test_no_pruning_in_the_warm_up_or_without_enough_trials() -> None:
    current = sweep(parallelTrials=3, pruning={"policy": "Median", "warmupEpochs": 1, "minTrials": 2})
    first = plan(current)
    epochs = (1, 1, 1)
    jobs = {j["metadata"]["name"]: job_with(j, "Running", progress={"epoch": e, "metrics": {"accuracy": a}})
            for j, e, a in zip(first.create, epochs, (0.9, 0.85, 0.1))}
    assert all(t.state == "Running" for t in plan(advance(current, first), jobs).status.trials)


GPU_TEMPLATE = {**EU_SPEC, "runPolicy": {"activeDeadlineSeconds": 360}}  # 1 GPU x 0.1 h per trial


def test_the_cost_cap_stops_launching_trials() -> None:
    current = sweep(template=GPU_TEMPLATE, maxTrials=5, parallelTrials=5, maxGpuHours=0.25)
    first = plan(current)
    assert len(first.status.trials) == 2  # a third would hold 0.3 > 0.25 GPU-hours
    assert first.status.reason == "CostCapReached" and first.status.phase == "Running"
    assert first.status.cost.estimated_gpu_hours == pytest.approx(0.5)
    assert first.status.cost.remaining_gpu_hours == pytest.approx(0.05)
    started = NOW - timedelta(minutes=3)  # each used 0.05 GPU-hours
    jobs = {j["metadata"]["name"]: job_with(j, "Succeeded", {"accuracy": 0.9}, started=started)
            for j in first.create}
    for job in jobs.values():
        job["status"]["completionTime"] = NOW.strftime("%Y-%m-%dT%H:%M:%SZ")
    second = plan(advance(current, first), jobs)
    assert len(second.status.trials) == 3  # 0.1 spent + 0.1 held by the new trial <= 0.25; a fourth is not
    assert second.status.cost.spent_gpu_hours == pytest.approx(0.1)


def test_a_budget_refusal_is_a_waiting_status() -> None:
    policy = {"metadata": {"name": "tight"}, "spec": {"namespaces": ["team"], "gpuHours": 0.05}}
    budget = BudgetFacts(namespace="team", policies=[policy])
    result = plan(sweep(template=GPU_TEMPLATE), budget=budget)
    assert not result.status.trials and not result.create
    assert result.status.phase == "Waiting" and result.status.reason == "BudgetExceeded"
    assert "BudgetPolicy tight" in str(result.status.message)
    assert result.status.cost.budget == "BudgetPolicy tight: 0.05 of 0.05 GPU-hours left this month"
    assert [e.reason for e in result.events] == ["BudgetExceeded"] and result.requeue_after


def test_gpu_trials_need_a_deadline_under_a_cost_cap() -> None:
    result = plan(sweep(template=EU_SPEC, maxGpuHours=1))
    assert result.status.phase == "Failed" and result.status.reason == "DeadlineRequired"


def test_parameters_that_make_an_invalid_spec_fail_their_trial() -> None:
    space = [{"path": "batchSize", "type": "int", "min": -5, "max": -1}]
    result = plan(sweep(parameters=space, maxTrials=1))
    assert result.status.trials[0].state == "Failed" and "spec.task.batchSize" in str(result.status.trials[0].message)
    assert not result.create and result.status.phase == "Failed"


def test_a_trial_whose_job_vanished_is_lost() -> None:
    first = plan(sweep())
    running = advance(sweep(), first)
    running.status.trials[0] = running.status.trials[0].model_copy(update={"state": TrialState.RUNNING})
    second = plan(running, {"s-t1": job_with(first.create[1], "Running")})
    assert second.status.trials[0].state == "Failed" and "deleted" in str(second.status.trials[0].message)


def test_grid_enumerates_in_order_and_refuses_continuous_parameters() -> None:
    space = [{"path": "batchSize", "type": "categorical", "values": [32, 64]},
             {"path": "model.hiddenSizes", "type": "categorical", "values": [[16], [64, 32]]}]
    grid = sweep(parameters=space, algorithm="Grid", maxTrials=10, parallelTrials=10)
    result = plan(grid)
    assert [t.parameters for t in result.status.trials] == [
        {"batchSize": 32, "model.hiddenSizes": [16]}, {"batchSize": 32, "model.hiddenSizes": [64, 32]},
        {"batchSize": 64, "model.hiddenSizes": [16]}, {"batchSize": 64, "model.hiddenSizes": [64, 32]},
    ]
    assert result.status.completed == "0/4"
    with pytest.raises(SearchSpaceError, match="learningRate"):
        suggest(sweep(algorithm="Grid").spec, [], 0)
    assert plan(sweep(algorithm="Grid")).status.reason == "InvalidSweep"


def test_tpe_samples_inside_the_space_and_round_trips_lists() -> None:
    space = [*SPACE, {"path": "model.hiddenSizes", "type": "categorical", "values": [[16], [64, 32]]}]
    current = sweep(parameters=space[:1] + space[2:], algorithm="TPE", startupTrials=2, maxTrials=6,
                    parallelTrials=1)
    for _ in range(4):
        result = plan(current)
        created = result.create[0]
        jobs = {created["metadata"]["name"]: job_with(created, "Succeeded", {"accuracy": 0.5})}
        current = advance(current, plan(advance(current, result), jobs))
    for trial in current.status.trials:
        assert 1e-4 <= trial.parameters["learningRate"] <= 0.3
        assert trial.parameters["model.hiddenSizes"] in ([16], [64, 32])
    assert len(current.status.trials) == 5


def test_trial_spec_sets_nested_paths() -> None:
    spec = sweep().spec
    body = trial_spec(spec, {"model.dropout": 0.2, "model.hiddenSizes.1": 8}, "s-t0")
    assert body["task"]["model"] == {"hiddenSizes": [64, 8], "dropout": 0.2}


def test_promote_best_holds_trials_back_and_releases_the_best_when_the_sweep_succeeds() -> None:
    template = {**LOCAL_SPEC, "model": {"name": "fraud"}}
    current = sweep(template=template, maxTrials=2, promoteBest=True)
    first = plan(current)
    annotations = first.create[0]["metadata"]["annotations"]
    assert annotations["kubetrain.io/sweep-promotion"] == "held"
    assert json.loads(annotations["kubetrain.io/sweep-search-space"])["parameters"][0]["path"] == "learningRate"
    assert first.release is None
    jobs = {j["metadata"]["name"]: job_with(j, "Succeeded", {"accuracy": a}) for j, a in zip(first.create, (0.9, 0.7))}
    done = plan(advance(current, first), jobs)
    assert done.status.phase == "Succeeded" and done.release == "s-t0"
    assert "BestSubmitted" in [e.reason for e in done.events]
    assert plan(advance(current, done), jobs).release is None  # once, on the transition


def test_a_held_trial_is_not_judged_and_its_provenance_names_the_sweep() -> None:
    template = {**LOCAL_SPEC, "model": {"name": "fraud"}}
    created = plan(sweep(template=template, promoteBest=True)).create[0]
    job = TrainingJob.model_validate(job_with(created, "Succeeded", {"accuracy": 0.9}))
    recorded = sweep_provenance(job)
    assert recorded is not None and recorded.sweep == "s" and recorded.trial == 0
    assert recorded.parameters == json.loads(created["metadata"]["annotations"]["kubetrain.io/sweep-parameters"])
    assert recorded.search_space["algorithm"] == "Random"
    provenance = Provenance(trainer_image="trainer:1", sweep=recorded)
    held = Draft.start(job, NOW)
    apply_promotion(held, PromotionFacts(held=True), {"accuracy": 0.9}, provenance)
    assert not held.create and not held.conditions[1:]  # no version, no Promoted condition
    released = Draft.start(job, NOW)
    apply_promotion(released, PromotionFacts(), {"accuracy": 0.9}, provenance)
    version = next(o for o in released.create if o["kind"] == "ModelVersion")
    assert version["spec"]["provenance"]["sweep"]["sweep"] == "s"
