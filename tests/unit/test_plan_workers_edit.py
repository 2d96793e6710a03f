"""An edit of spec.workers while the group runs rolls it into a new attempt of the new size: not
a failure (restarts and backoffLimit untouched), and no pod keeps the old WORLD_SIZE."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from kubetrain.api.immutable import FROZEN, frozen_changes
from kubetrain.api.spec import TrainingJobSpec
from tests.unit.test_plan_rules import DDP, condition, created_names, observe, raw_pod, run, running_status


def _env(pod: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in pod["spec"]["containers"][0]["env"]}


@pytest.mark.parametrize(("before", "after"), [(2, 3), (3, 1), (2, 1)])
def test_a_workers_edit_rolls_the_group_into_a_new_attempt_not_counted_as_a_failure(before: int, after: int) -> None:
    job = DDP.spec(workers=after).status(running_status(restarts=1, attempt=1)).obj()
    pods = [raw_pod(i, "Running", attempt=1, workers=before) for i in range(before)]

    rolled = run(job, observe(*pods))

    assert rolled.status.restarts == 1 and rolled.status.attempt == 2
    assert sorted(rolled.delete_pods) == sorted(p["metadata"]["name"] for p in pods)
    restarting = condition(rolled, "Restarting")
    assert restarting is not None and restarting["reason"] == "WorkersChanged"
    assert f"spec.workers changed from {before} to {after}" in restarting["message"]
    assert "not counted against runPolicy.backoffLimit" in restarting["message"]
    assert "WorkersChanged" in [e.reason for e in rolled.events]

    # Once the old pods are gone, the next attempt starts with the new size.
    started = run(DDP.spec(workers=after).status(rolled.status.to_k8s()).obj(), observe())
    new_pods = [o for o in started.create if o["kind"] == "Pod"]
    assert created_names(started) == [f"pytorch-ddp-worker-{i}" for i in range(after)]
    for pod in new_pods:
        assert pod["metadata"]["labels"]["kubetrain.io/attempt"] == "2"
        assert pod["metadata"]["labels"]["kubetrain.io/workers"] == str(after)
        assert _env(pod)["WORLD_SIZE"] == str(after)
    assert started.status.restarts == 1


def test_pods_of_the_current_size_are_not_rolled() -> None:
    job = DDP.spec(workers=2).status(running_status()).obj()
    result = run(job, observe(*[raw_pod(i, "Running", workers=2) for i in range(2)]))
    assert result.delete_pods == [] and result.status.phase == "Running" and result.status.attempt is None


def test_data_and_build_fields_are_frozen_once_started() -> None:
    started = {"spec": {"dataset": {"uri": "s3://a/x"}, "workers": 2, "podTemplate": {"spec": {}}},
               "status": {"startTime": "2025-01-01T11:00:00Z"}}
    edited = {"spec": {"dataset": {"uri": "s3://b/x"}, "workers": 3, "podTemplate": {"spec": {"volumes": []}}}}
    messages = frozen_changes(edited, started)
    assert [m.split(" ")[0] for m in messages] == ["spec.dataset", "spec.podTemplate.spec"]
    assert "create a new job" in messages[0]
    assert frozen_changes(edited, {**started, "status": {}}) == []  # not started yet: anything goes
    assert frozen_changes({"spec": {**started["spec"], "workers": 5}}, started) == []


def test_a_suspended_job_stays_frozen() -> None:
    """Suspension clears startTime (the deadline clock restarts on resume) but not firstStartTime:
    suspend, edit, resume must not unfreeze what the pods read."""
    job = DDP.spec(workers=2).run_policy(**{"suspend": True}).status(running_status()).obj()
    suspended = run(job, observe(*[raw_pod(i, "Running", workers=2) for i in range(2)])).status.to_k8s()
    assert "startTime" not in suspended and suspended["firstStartTime"] == running_status()["startTime"]
    started = {"spec": {"dataset": {"uri": "s3://a/x"}}, "status": suspended}
    [message] = frozen_changes({"spec": {"dataset": {"uri": "s3://b/x"}}}, started)
    assert message.startswith("spec.dataset cannot change once the job has started")


def test_the_first_start_is_recorded_once_and_never_moves() -> None:
    first = run(DDP.spec(workers=2).status({}).obj(), observe()).status
    assert first.first_start_time == first.start_time is not None
    resumed = run(DDP.spec(workers=2).status({"firstStartTime": "2024-06-01T00:00:00Z"}).obj(), observe()).status
    assert resumed.start_time is not None and resumed.first_start_time.isoformat().startswith("2024-06-01")


# What the pods read or how they are built, spelled out: every other spec field may change.
MUTABLE = {"workers", "runPolicy", "evaluation", "podTemplate"}
CRD = Path(__file__).resolve().parents[2] / "crds" / "kubetrain.io_trainingjobs.yaml"


def test_every_spec_field_but_the_mutable_ones_is_frozen() -> None:
    fields = {f.alias or n for n, f in TrainingJobSpec.model_fields.items()}
    assert set(FROZEN) == fields - MUTABLE


def test_the_installed_crd_carries_a_transition_rule_per_frozen_field_keyed_on_the_first_start() -> None:
    """The committed CRD (what the cluster gets), not the generator's output; the API server
    evaluates these rules in tests/integration/test_running_edits.py."""
    root = yaml.safe_load(CRD.read_text())["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    rules = {r["message"].split(" ")[0]: r["rule"] for r in root["x-kubernetes-validations"] if "oldSelf" in r["rule"]}
    assert set(rules) == {f"spec.{f}" for f in FROZEN} | {"spec.podTemplate.metadata"}
    for field, rule in rules.items():
        assert "has(oldSelf.status.firstStartTime)" in rule and f"self.{field}" in rule, rule
