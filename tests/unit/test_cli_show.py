"""The job verbs' formatting (cli/show.py) and the log merge (client/logs.py), on built jobs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from kubetrain.api.budget import Cost
from kubetrain.cli import show
from kubetrain.client.logs import LogLine, merge_timestamped, source_of
from tests.builders import JobBuilder

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


JOB = JobBuilder.bare("j", "ns").created(NOW - timedelta(minutes=3)).spec(
    image="trainer:1", command=["python", "train.py"]
).status()


def condition(type_: str, reason: str, minutes_ago: int, status: str = "True", message: str = "") -> dict[str, Any]:
    when = (NOW - timedelta(minutes=minutes_ago)).isoformat()
    return {"type": type_, "status": status, "reason": reason, "message": message, "lastTransitionTime": when}


@pytest.mark.parametrize(
    ("value", "text"),
    [(None, "[..........]    -"), (0.0, "[..........]   0%"), (45.0, "[####......]  45%"), (100.0, "[##########] 100%"),
     (130.0, "[##########] 130%")],
)
def test_bar(value: float | None, text: str) -> None:
    assert show.bar(value, width=10) == text


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ({}, None),
        ({"phase": "Running", "progress": {"percent": 12.5, "step": 90, "totalSteps": 100}}, 12.5),
        ({"phase": "Running", "progress": {"step": 30, "totalSteps": 120}}, 25.0),
        ({"phase": "Running", "progress": {"epoch": 2, "totalEpochs": 8}}, 25.0),
        ({"phase": "Succeeded", "progress": {"epoch": 7, "totalEpochs": 8}}, 100.0),
    ],
)
def test_percent_prefers_the_trainers_figure_then_steps_then_epochs(
    status: dict[str, Any], expected: float | None
) -> None:
    assert show.percent(JOB.status(status).obj()) == expected


def test_metrics_are_the_final_ones_once_written_else_the_live_ones() -> None:
    live = JOB.status({"progress": {"metrics": {"val_loss": 0.5}}}).obj()
    final = JOB.status({"metrics": {"accuracy": 0.93}, "progress": {"metrics": {"val_loss": 0.5}}}).obj()
    assert show.latest_metrics(live) == {"val_loss": 0.5}
    assert show.latest_metrics(final) == {"accuracy": 0.93}
    assert show.metrics_text({"f1": 0.9, "accuracy": 0.93456, "loss": 0.2, "recall": 0.8}) == (
        "accuracy=0.9346 f1=0.9 loss=0.2 (+1)"
    )
    assert show.metrics_text({}) == "-"


def test_the_reason_is_the_phases_condition_else_the_latest_change() -> None:
    failed = JOB.status({"phase": "Failed", "conditions": [
        condition("Running", "AllWorkersRunning", 5, "False"), condition("Failed", "BackoffLimitExceeded", 6)]}).obj()
    pending = JOB.status({"phase": "Pending", "conditions": [
        condition("Created", "AllWorkersCreated", 9), condition("Running", "Unschedulable", 1, "False")]}).obj()
    assert show.reason(failed) == "BackoffLimitExceeded"
    assert show.reason(pending) == "Unschedulable"
    assert show.reason(JOB.obj()) == "-"
    queued = JOB.status({"phase": "Queued", "conditions": [
        condition("BudgetAvailable", "BudgetExceeded", 9, "False"), condition("Queued", "BudgetExhausted", 8)]}).obj()
    assert show.reason(queued) == "BudgetExhausted"


@pytest.mark.parametrize(("seconds", "text"), [(0, "0s"), (59, "59s"), (60, "1m"), (7200, "2h"), (200000, "2d")])
def test_age(seconds: int, text: str) -> None:
    assert show.age(NOW - timedelta(seconds=seconds), NOW) == text


def test_job_table_aligns_columns() -> None:
    running = JOB.name("a-long-name").status({"phase": "Running", "progress": {"epoch": 4, "totalEpochs": 8},
                   "conditions": [condition("Running", "AllWorkersRunning", 1)]}).obj()
    lines = show.job_table([running, JOB.name("b").obj()], NOW)
    assert lines == [
        "NAME         PHASE    PROGRESS                               METRICS  REASON             AGE",
        "a-long-name  Running  [##########..........]  50% epoch 4/8  -        AllWorkersRunning  3m",
        "b            Pending  [....................]    -            -        -                  3m",
    ]


def test_watch_line_shows_eta_and_loss_while_running_and_the_outcome_at_the_end() -> None:
    running = JOB.status({"phase": "Running", "progress": {
        "epoch": 2, "totalEpochs": 8, "etaSeconds": 3725, "trainLoss": 0.31234, "samplesPerSecond": 1500.0,
        "metrics": {"val_accuracy": 0.8}}}).obj()
    assert show.watch_line(running) == (
        "j  Running  [#####...............]  25% epoch 2/8  ETA 1:02:05  loss=0.3123  1500 samples/s  val_accuracy=0.8"
    )
    deadline = condition("Failed", "DeadlineExceeded", 0, message="too slow")
    failed = JOB.status(phase="Failed", conditions=[deadline]).obj()
    assert show.watch_line(failed).endswith("DeadlineExceeded: too slow")


@pytest.mark.parametrize(
    ("cost", "text"),
    [
        (Cost(estimated_gpu_hours=0), "no GPUs"),
        (Cost(), "unbounded GPU-hours (GPUs without runPolicy.activeDeadlineSeconds)"),
        (Cost(estimated_gpu_hours=2, price_per_gpu_hour=3.5, estimated_cost=7),
         "at most 2 GPU-hours (7.00 at 3.5 per GPU-hour)"),
        (Cost(estimated_gpu_hours=2, used_gpu_hours=0.5), "at most 2 GPU-hours; used 0.5 GPU-hours"),
    ],
)
def test_cost_text(cost: Cost, text: str) -> None:
    assert show.cost_text(cost) == text


def test_describe_lists_conditions_events_and_provenance() -> None:
    described = JOB.status({"phase": "Succeeded", "modelVersion": "fraud-v2",
                     "conditions": [condition("Succeeded", "AllWorkersSucceeded", 2)],
                     "provenance": {"trainerImage": "trainer:1", "datasetDigest": "sha256:ab"}}).obj()
    events = [{"type": "Normal", "reason": "AllWorkersCreated", "message": "2 pods",
               "lastTimestamp": (NOW - timedelta(seconds=30)).isoformat()}]
    text = "\n".join(show.describe(described, events, NOW))
    assert "Phase:         Succeeded (AllWorkersSucceeded)" in text
    assert "Model version: fraud-v2" in text
    assert "  Succeeded  True    AllWorkersSucceeded  2m" in text
    assert "  image:          trainer:1" in text and "  dataset digest: sha256:ab" in text
    assert "  Normal  AllWorkersCreated  30s  2 pods" in text
    assert show.describe(JOB.obj(), [], NOW)[-1] == "  <none>"


def test_describe_shows_an_elastic_groups_size_and_changes() -> None:
    elastic = JOB.merge(workers=4, elastic={"minWorkers": 2}).status(
        {"phase": "Running", "elastic": {"workers": 3, "membershipChanges": 2}}).obj()
    assert "Elastic:       3 running (min 2, max 4), 2 membership changes" in show.describe(elastic, [], NOW)
    assert not any(line.startswith("Elastic:") for line in show.describe(JOB.obj(), [], NOW))


def test_logs_merge_in_time_order_keeping_each_sources_order() -> None:
    merged = merge_timestamped({
        "rank 1": "2026-12-02T12:00:01.000000002Z b1\n2026-12-02T12:00:03.000000000Z b2\n",
        "rank 0": "2026-12-02T12:00:01.000000001Z a1\n2026-12-02T12:00:05.000000000Z a2 with  spaces",
    })
    assert merged == [LogLine("rank 0", "a1"), LogLine("rank 1", "b1"), LogLine("rank 1", "b2"),
                      LogLine("rank 0", "a2 with  spaces")]


def test_log_sources_are_ranks_and_the_ray_head() -> None:
    assert source_of({"kubetrain.io/role": "worker", "kubetrain.io/replica-index": "3"}) == "rank 3"
    assert source_of({"kubetrain.io/role": "head", "kubetrain.io/replica-index": "0"}) == "head"
