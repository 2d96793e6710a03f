"""The planner's building blocks: conditions, phase derivation, observed pods, reports, patches."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from kubetrain.api import Condition, ConditionStatus, ConditionType, Phase, TrainingJobStatus
from kubetrain.plan import Observed, derive_phase, status_patch
from kubetrain.plan.conditions import set_condition, set_false_if_true
from kubetrain.plan.report import parse_report

T0 = datetime(2025, 1, 1, tzinfo=timezone.utc)
T1 = T0 + timedelta(minutes=5)


def test_transition_time_moves_only_when_the_status_flips() -> None:
    conditions = set_condition([], ConditionType.RUNNING, True, "A", "first", T0, 1)
    conditions = set_condition(conditions, ConditionType.RUNNING, True, "B", "second", T1, 2)
    [running] = conditions
    assert (running.reason, running.message, running.last_transition_time, running.observed_generation) == (
        "B",
        "second",
        T0,
        2,
    )
    [running] = set_condition(conditions, ConditionType.RUNNING, False, "C", "", T1, 2)
    assert running.status == ConditionStatus.FALSE and running.last_transition_time == T1


def test_setting_one_condition_keeps_the_others_in_place() -> None:
    conditions = set_condition([], ConditionType.CREATED, True, "A", "", T0, 1)
    conditions = set_condition(conditions, ConditionType.RUNNING, True, "A", "", T0, 1)
    conditions = set_condition(conditions, ConditionType.CREATED, False, "B", "", T1, 1)
    assert [c.type for c in conditions] == ["Created", "Running"]


def test_closing_a_condition_never_invents_it() -> None:
    assert set_false_if_true([], ConditionType.RESTARTING, "R", "", T0, 1) == []
    conditions = set_condition([], ConditionType.RESTARTING, True, "A", "", T0, 1)
    [closed] = set_false_if_true(conditions, ConditionType.RESTARTING, "R", "m", T1, 1)
    assert closed.status == ConditionStatus.FALSE and closed.reason == "R"


@pytest.mark.parametrize(
    ("true", "phase"),
    [
        ([], Phase.PENDING),
        (["Created"], Phase.STARTING),
        (["Created", "Running"], Phase.RUNNING),
        (["Running", "Restarting"], Phase.RESTARTING),
        (["Restarting", "Suspended"], Phase.SUSPENDED),
        (["Running", "Succeeded"], Phase.SUCCEEDED),
        (["Suspended", "Failed"], Phase.FAILED),
        (["Succeeded", "Failed"], Phase.FAILED),
    ],
)
def test_phase_is_derived_from_conditions(true: list[str], phase: Phase) -> None:
    conditions = [
        Condition(
            type=t,
            status=ConditionStatus.TRUE if t in true else ConditionStatus.FALSE,
            reason="R",
            last_transition_time=T0,
        )
        for t in ConditionType
    ]
    assert derive_phase(conditions) == phase


def test_observed_parses_raw_api_objects() -> None:
    pods = [
        {
            "metadata": {
                "name": "j-worker-1",
                "labels": {
                    "kubetrain.io/role": "worker",
                    "kubetrain.io/replica-index": "1",
                    "kubetrain.io/attempt": "2",
                },
                "deletionTimestamp": "2025-01-01T00:00:00Z",
            },
            "spec": {"nodeName": "node-a"},
            "status": {
                "phase": "Failed",
                "reason": "Evicted",
                "conditions": [{"type": "Ready", "status": "False"}],
                "containerStatuses": [
                    {"name": "sidecar", "ready": True, "state": {"running": {}}},
                    {
                        "name": "trainer",
                        "ready": False,
                        "state": {"terminated": {"exitCode": 137, "reason": "OOMKilled", "message": "{}"}},
                    },
                ],
            },
        },
        {"metadata": {"name": "j-worker-0", "labels": {"kubetrain.io/replica-index": "x"}}},
    ]
    observed = Observed.from_k8s(pods, [{"metadata": {"name": "j"}}])
    assert observed.service_names == {"j"}
    bare, evicted = observed.pods
    assert (bare.name, bare.phase, bare.index, bare.attempt, bare.role, bare.terminated) == (
        "j-worker-0",
        "Pending",
        None,
        None,
        None,
        None,
    )
    assert (evicted.index, evicted.attempt, evicted.role, evicted.deleting, evicted.ready) == (
        1,
        2,
        "worker",
        True,
        False,
    )
    assert (evicted.reason, evicted.node_name, evicted.conditions) == ("Evicted", "node-a", {"Ready": "False"})
    assert evicted.terminated is not None and (evicted.terminated.exit_code, evicted.terminated.reason) == (
        137,
        "OOMKilled",
    )


@pytest.mark.parametrize(
    ("message", "reason", "permanent"),
    [
        ('{"outcome": "Failed", "reason": "Diverged", "message": "loss nan", "metrics": {}}', "Diverged", True),
        ('{"outcome": "Failed", "reason": "InvalidData", "message": "bad"}', "InvalidData", True),
        ('{"outcome": "Failed", "reason": "TrainerError", "message": "boom"}', "TrainerError", False),
        (
            '{"outcome": "Succeeded", "reason": "Completed", "metrics": {"accuracy": 1}, "modelUri": "file:///m"}',
            "Completed",
            False,
        ),
    ],
)
def test_trainer_reports(message: str, reason: str, permanent: bool) -> None:
    report = parse_report(message)
    assert report is not None and report.reason == reason and report.permanent is permanent


@pytest.mark.parametrize("message", [None, "", "Traceback (most recent call last)", "[1, 2]", '{"no": "outcome"}'])
def test_anything_else_is_not_a_report(message: str | None) -> None:
    assert parse_report(message) is None


def test_status_patch_writes_only_what_changed_and_never_the_trainers_fields() -> None:
    previous = {
        "phase": "Running",
        "restarts": 0,
        "startTime": "2025-01-01T00:00:00Z",
        "metrics": {"accuracy": 0.5},
        "progress": {"percent": 10.0},
    }
    same = TrainingJobStatus.model_validate(previous)
    assert status_patch(previous, same) == {}
    changed = same.model_copy(
        update={"phase": Phase.SUSPENDED, "start_time": None, "metrics": {"accuracy": 0.9}, "progress": None}
    )
    assert status_patch(previous, changed) == {"phase": "Suspended", "startTime": None}


def test_status_patch_fills_empty_metrics_and_unstored_defaults() -> None:
    status = TrainingJobStatus(metrics={"accuracy": 0.93})
    assert status_patch(None, status) == {"phase": "Pending", "restarts": 0, "metrics": {"accuracy": 0.93}}
