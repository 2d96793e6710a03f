"""spec.elastic without a cluster: the API's rules, the env torchrun gets, the gang's minimum, the
planner's membership rules (plan/elastic.py) and the trainer's resume step in a new world size."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from kubetrain.api import TrainingJob
from kubetrain.api.spec import ELASTIC_MIN_MESSAGE, ELASTIC_RUNTIME_MESSAGE
from kubetrain.plan import Plan, plan
from kubetrain.policy.kueue import KueueFacts
from kubetrain.render.job import render_children
from kubetrain_trainer.checkpoint import Resumed
from tests.unit.test_plan_rules import (
    CATALOGUE,
    DDP,
    NAME,
    NOW,
    SETTINGS,
    children,
    cond,
    condition,
    observe,
    raw_pod,
    run,
    running_status,
)
from tests.unit.test_render_gang import GANG

ELASTIC = DDP.merge(workers=3, elastic={"minWorkers": 2, "maxRestarts": 2})
ROOT = Path(__file__).resolve().parents[2]
WORKERS = [f"{NAME}-worker-{i}" for i in range(3)]


def pod(index: int, phase: str = "Running", *, placed: bool = True, **kwargs: Any) -> dict[str, Any]:
    raw = raw_pod(index, phase, workers=3, **kwargs)
    if not placed:
        raw["spec"] = {}
        raw["status"] = {"phase": "Pending"}
    return raw


def training(workers: int, **extra: Any) -> TrainingJob:
    """The elastic job while its group of `workers` trains."""
    status = running_status(elastic={"workers": workers, "membershipChanges": 0}, **extra)
    return ELASTIC.status(status).obj()


def membership_events(result: Plan) -> list[tuple[str, str]]:
    return [(e.type, e.message) for e in result.events if e.reason == "MembershipChanged"]


# --- API -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("spec", "message"), [
    ({"workers": 2, "elastic": {"minWorkers": 3}}, ELASTIC_MIN_MESSAGE),
    ({"runtime": "ray", "workers": 2, "elastic": {"minWorkers": 1}}, ELASTIC_RUNTIME_MESSAGE),
    ({"workers": 2, "elastic": {"minWorkers": 0}}, "greater than or equal to 1"),
    ({"workers": 2, "elastic": {"minWorkers": 1, "maxRestarts": -1}}, "greater than or equal to 0"),
], ids=["min-above-workers", "ray", "min-zero", "negative-restarts"])
def test_elastic_specs_the_api_refuses_say_which_field_and_how_to_fix_it(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        DDP.merge(**spec).obj()


def test_the_crd_carries_the_same_rules() -> None:
    crd = yaml.safe_load((ROOT / "crds" / "kubetrain.io_trainingjobs.yaml").read_text())
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    messages = [rule["message"] for rule in schema["x-kubernetes-validations"]]
    assert ELASTIC_MIN_MESSAGE in messages and ELASTIC_RUNTIME_MESSAGE in messages
    assert schema["properties"]["elastic"]["required"] == ["minWorkers"]


# --- render ----------------------------------------------------------------------------------


def _env(pod: dict[str, Any]) -> dict[str, str]:
    return {v["name"]: v["value"] for v in pod["spec"]["containers"][0]["env"] if "value" in v}


def test_every_worker_gets_torchruns_dynamic_rendezvous_and_no_fixed_rank() -> None:
    children = render_children(ELASTIC.obj(), CATALOGUE, GANG)
    envs = [_env(p) for p in children.pods]
    assert len(envs) == 3
    for index, env in enumerate(envs):
        assert env["PET_NNODES"] == "2:3"
        assert env["PET_RDZV_BACKEND"] == "c10d"
        assert env["PET_RDZV_ENDPOINT"] == f"{NAME}-worker-0.{NAME}:29400"
        assert env["PET_RDZV_ID"] == "uid-1-0", "the job's uid and attempt"
        assert env["PET_MAX_RESTARTS"] == "2"
        assert f"is_host={'true' if index == 0 else 'false'}" in env["PET_RDZV_CONF"]
        assert not {"RANK", "WORLD_SIZE", "NODE_RANK", "MASTER_ADDR", "PET_NODE_RANK"} & set(env)
    ports = {p["name"]: p["port"] for p in children.service["spec"]["ports"]}
    assert ports == {"rendezvous": 29500, "elastic": 29400}
    assert children.service["spec"]["selector"] == {"kubetrain.io/job-name": NAME, "kubetrain.io/role": "worker"}, \
        "every worker's name resolves: torch elastic's rank 0 may be any worker and publishes its own host name"
    assert children.pod_group is not None
    assert children.pod_group["spec"] == {"schedulingPolicy": {"gang": {"minCount": 2}}}, "minWorkers start it"


def test_a_fixed_size_job_renders_as_before() -> None:
    env = _env(render_children(DDP.obj(), CATALOGUE, GANG).pods[1])
    assert env["RANK"] == "1" and env["WORLD_SIZE"] == "2" and "PET_RDZV_ENDPOINT" not in env


# --- plan ------------------------------------------------------------------------------------


def test_running_with_the_minimum_while_a_worker_waits_for_a_node() -> None:
    result = run(ELASTIC.status().obj(), observe(pod(0), pod(1), pod(2, placed=False)))
    running = condition(result, "Running")
    assert running is not None and running["status"] == "True" and running["reason"] == "MinWorkersRunning"
    assert "2 of 3 workers" in running["message"]
    assert result.status.elastic is not None and result.status.elastic.workers == 2
    assert result.status.phase == "Running"


def test_not_running_without_worker_zero_which_hosts_the_rendezvous() -> None:
    result = run(ELASTIC.status().obj(), observe(pod(0, placed=False), pod(1), pod(2)))
    assert condition(result, "Running") is None


def test_not_running_while_a_placed_worker_is_still_starting() -> None:
    result = run(ELASTIC.status().obj(), observe(pod(0), pod(1), pod(2, "Pending")))
    assert condition(result, "Running") is None


def test_losing_a_worker_above_the_minimum_replaces_it_alone() -> None:
    result = run(training(3), observe(pod(0), pod(1), pod(2, "Failed")))
    assert result.status.restarts == 0 and result.status.attempt is None
    assert result.delete_pods == [WORKERS[2]], "deleted, so that it is created again and rejoins"
    assert result.status.worker_replacements == 1
    assert result.status.elastic is not None
    assert (result.status.elastic.workers, result.status.elastic.membership_changes) == (2, 1)
    [(kind, message)] = membership_events(result)
    assert kind == "Warning" and "re-forms with 2 workers" in message
    assert condition(result, "Running")["status"] == "True"

    replanned = TrainingJob.model_validate({**training(3).to_k8s(), "status": result.status.to_k8s()})
    for worker_2 in (pod(2, "Failed", deleting=True), pod(2, "Failed")):  # the delete seen, or not yet
        again = run(replanned, observe(pod(0), pod(1), worker_2))
        assert again.status.elastic == result.status.elastic and again.status.worker_replacements == 1
        assert membership_events(again) == [], "re-planning the same loss counts nothing"


def test_a_worker_that_vanished_counts_as_lost() -> None:
    result = run(training(3), observe(pod(0), pod(1)))
    assert result.status.restarts == 0 and result.status.worker_replacements == 1
    assert [p["metadata"]["name"] for p in result.create if p["kind"] == "Pod"] == [WORKERS[2]]


def test_falling_below_the_minimum_restarts_the_whole_group() -> None:
    result = run(training(3), observe(pod(0), pod(1, "Failed"), pod(2, "Failed")))
    assert result.status.restarts == 1 and result.status.current_attempt == 1
    restarting = condition(result, "Restarting")
    assert restarting["reason"] == "BelowMinWorkers"
    assert "1 workers left, fewer than spec.elastic.minWorkers (2)" in restarting["message"]
    assert result.status.elastic is not None
    assert (result.status.elastic.workers, result.status.elastic.membership_changes) == (0, 0), \
        "a whole-group restart is no in-place change"


def test_losing_worker_zero_restarts_the_whole_group() -> None:
    result = run(training(3), observe(pod(0, "Failed"), pod(1), pod(2)))
    assert result.status.restarts == 1
    assert condition(result, "Restarting")["reason"] == "WorkerFailed"


def test_one_loss_more_than_max_restarts_restarts_the_whole_group() -> None:
    result = run(training(3, workerReplacements=2), observe(pod(0), pod(1), pod(2, "Failed")))
    assert result.status.restarts == 1
    restarting = condition(result, "Restarting")
    assert restarting["reason"] == "WorkerReplacementsExhausted"
    assert "spec.elastic.maxRestarts: 2" in restarting["message"]


def test_a_worker_joining_grows_the_group_without_using_a_restart() -> None:
    result = run(training(2, workerReplacements=1), observe(pod(0), pod(1), pod(2)))
    assert result.status.elastic is not None
    assert (result.status.elastic.workers, result.status.elastic.membership_changes) == (3, 1)
    assert result.status.worker_replacements == 1 and result.status.restarts == 0
    [(kind, message)] = membership_events(result)
    assert kind == "Normal" and "grows from 2 to 3 workers" in message


def test_worker_zero_succeeding_is_success_and_the_waiting_worker_is_removed() -> None:
    result = run(training(2), observe(pod(0, "Succeeded"), pod(1, "Succeeded"), pod(2, placed=False)))
    succeeded = condition(result, "Succeeded")
    assert succeeded is not None and succeeded["status"] == "True"
    assert result.delete_pods == [WORKERS[2]]


def test_a_worker_finishing_just_before_worker_zero_is_no_loss() -> None:
    result = run(training(3), observe(pod(0), pod(1, "Succeeded"), pod(2, "Succeeded")))
    assert result.status.worker_replacements is None and result.delete_pods == []
    assert condition(result, "Succeeded") is None and membership_events(result) == []


def test_a_restarted_attempt_starts_counting_members_afresh() -> None:
    status = running_status(restarts=1, attempt=1, elastic={"workers": 0, "membershipChanges": 3},
                            conditions=[cond("Restarting")])
    result = run(ELASTIC.status(status).obj(), observe(*(raw_pod(i, "Running", 1, workers=3) for i in range(3))))
    assert result.status.elastic is not None
    assert (result.status.elastic.workers, result.status.elastic.membership_changes) == (3, 3)
    assert membership_events(result) == []


# --- trainer ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("saved", "steps_per_epoch", "expected"), [
    (Resumed(step=90, epoch=5, name="s", steps_per_epoch=15), 22, 6 * 22),  # epoch 5 ended: epoch 6 starts
    (Resumed(step=82, epoch=5, name="s", steps_per_epoch=15), 22, 5 * 22 + 11),  # 7 of 15 -> 11 of 22 (ceil)
    (Resumed(step=82, epoch=5, name="s", steps_per_epoch=15), 15, 82),
    (Resumed(step=82, epoch=5, name="s", steps_per_epoch=None), 22, 82),
], ids=["epoch-end", "mid-epoch", "same-world", "older-checkpoint"])
def test_a_checkpoint_resumes_at_the_same_fraction_of_its_epoch(saved: Resumed, steps_per_epoch: int,
                                                                 expected: int) -> None:
    assert saved.step_in(steps_per_epoch) == expected


# --- Kueue -----------------------------------------------------------------------------------


def test_kueue_may_admit_an_elastic_job_partially_and_only_the_admitted_workers_are_created() -> None:
    queued = ELASTIC.metadata(labels={"kueue.x-k8s.io/queue-name": "team"})
    first = plan(queued.obj(), observe(service=False), children(queued.obj()), CATALOGUE, SETTINGS, NOW,
                 kueue=KueueFacts())
    [workload] = [o for o in first.create if o["kind"] == "Workload"]
    assert [(s["name"], s["count"], s.get("minCount")) for s in workload["spec"]["podSets"]] == [("worker", 3, 2)]

    workload["status"] = {
        "conditions": [cond("QuotaReserved"), cond("Admitted")],
        "admission": {"clusterQueue": "cq", "podSetAssignments": [{"name": "worker", "count": 2, "flavors": {}}]},
    }
    job = queued.status(first.status.to_k8s()).obj()
    result = plan(job, observe(service=False), children(job), CATALOGUE, SETTINGS, NOW,
                  kueue=KueueFacts(workload=workload))
    assert [o["metadata"]["name"] for o in result.create if o["kind"] == "Pod"] == WORKERS[:2]


def test_a_fixed_size_job_asks_kueue_for_all_its_workers() -> None:
    queued = DDP.metadata(labels={"kueue.x-k8s.io/queue-name": "team"}).obj()
    result = plan(queued, observe(service=False), children(queued), CATALOGUE, SETTINGS, NOW, kueue=KueueFacts())
    [pod_set] = next(o for o in result.create if o["kind"] == "Workload")["spec"]["podSets"]
    assert "minCount" not in pod_set


def test_a_grown_group_saving_a_step_name_again_keeps_the_checkpoint_latest_names(tmp_path: Path) -> None:
    import torch

    from kubetrain_trainer.checkpoint import Checkpointer

    model = torch.nn.Linear(2, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    Checkpointer(f"file://{tmp_path}").save(200, 0, 250, model, optimizer)
    grown = Checkpointer(f"file://{tmp_path}")
    latest = grown.read_latest()
    assert latest is not None
    assert grown.restore(*latest, model, optimizer).step_in(125) == 100, "2 -> 4 workers halves the epoch"
    for step in (150, 200):  # step-200.pt again: the newest now, not the oldest
        grown.save(step, 1, 125, model, optimizer)
    assert grown.read_latest() is not None
    assert sorted(p.name for p in (tmp_path / "checkpoints").glob("*.pt")) == ["step-150.pt", "step-200.pt"]


def test_suspending_an_elastic_job_leaves_its_group_without_members() -> None:
    job = ELASTIC.run_policy(suspend=True).status(
        running_status(elastic={"workers": 3, "membershipChanges": 2})).obj()
    result = run(job, observe(pod(0), pod(1), pod(2)))
    assert result.status.elastic is not None
    assert (result.status.elastic.workers, result.status.elastic.membership_changes) == (0, 2)
