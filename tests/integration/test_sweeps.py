"""TrainingSweeps on the real control plane: a random and a TPE sweep of the built-in trainer on the
executing local node; and, with trials on KWOK GPU nodes that the test drives as the trainer would
(status.progress, the final report), the cost cap, a budget refusal, median pruning, and an
operator killed mid-sweep. The pure rules are tests/unit/test_sweep_plan.py; how TPE compares with
random search over many seeds is bench/sweep_search.py."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import yaml

from kubetrain.devcluster.cluster import LocalCluster
from tests.builders import example
from tests.helpers import wait_for
from tests.jobs import GROUP, VERSION, Jobs
from tests.operator_process import OperatorProcess
from tests.registry import Registry, finish, report

pytestmark = pytest.mark.cluster

PLURAL = "trainingsweeps"


@pytest.fixture
def jobs(api: kubernetes.client.ApiClient, namespace: str, operator: OperatorProcess) -> Jobs:
    return Jobs(api, namespace)


def create_sweep(jobs: Jobs, body: dict[str, Any]) -> str:
    jobs.custom.create_namespaced_custom_object(GROUP, VERSION, jobs.ns, PLURAL, body)
    return str(body["metadata"]["name"])


def sweep_status(jobs: Jobs, name: str) -> dict[str, Any]:
    return jobs.custom.get_namespaced_custom_object(GROUP, VERSION, jobs.ns, PLURAL, name).get("status") or {}


def wait_sweep(jobs: Jobs, name: str, check: Any, timeout: float = 60, what: str = "sweep status") -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        status = sweep_status(jobs, name)
        return status if check(status) else None

    try:
        return wait_for(reached, timeout=timeout, what=what)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; status now: {sweep_status(jobs, name)}") from None


def trial_jobs(jobs: Jobs, sweep: str) -> list[str]:
    items = jobs.custom.list_namespaced_custom_object(
        GROUP, VERSION, jobs.ns, "trainingjobs", label_selector=f"kubetrain.io/sweep={sweep}"
    )["items"]
    return sorted(i["metadata"]["name"] for i in items)


def kwok_sweep(name: str, **spec: Any) -> dict[str, Any]:
    """Trials of one GPU on a100-eu with a 360 s deadline: 0.1 GPU-hours each at most."""
    body = copy.deepcopy(example("sweep-tabular.yaml"))
    body["metadata"]["name"] = name
    template = body["spec"]["jobTemplate"]["spec"]
    template.update(nodePool="a100-eu", resources={"cpu": "1", "memory": "1Gi", "gpus": 1},
                    runPolicy={"activeDeadlineSeconds": 360})
    body["spec"].pop("maxGpuHours")
    body["spec"].update(spec)
    return body


# -- real training on the local node ---------------------------------------------------------------
@pytest.fixture
def data(tmp_path: Path) -> Path:
    path = tmp_path / "tabular.csv"
    subprocess.run([sys.executable, "-m", "kubetrain_trainer.datagen", "tabular", "--out", str(path), "--rows", "600",
                    "--seed", "0"], check=True)
    return path


def test_random_and_tpe_sweeps_train_and_pick_the_best_trial(
    cluster: LocalCluster, jobs: Jobs, data: Path, tmp_path: Path
) -> None:
    names = []
    for algorithm in ("Random", "TPE"):
        body = copy.deepcopy(example("sweep-tabular.yaml"))
        name = f"tabular-{algorithm.lower()}"
        body["metadata"]["name"] = name
        body["spec"].update(algorithm=algorithm, maxTrials=3, parallelTrials=1, startupTrials=2,
                            pruning={"policy": "None"})  # pruning is driven deterministically below
        template = body["spec"]["jobTemplate"]["spec"]
        template["task"]["epochs"] = 2
        template["dataset"]["uri"] = f"file://{data}"
        template["output"]["uri"] = f"file://{tmp_path / name}"
        cluster.kubectl("apply", "-n", jobs.ns, "-f", "-", input=yaml.safe_dump(body))
        names.append(name)
    for name in names:
        status = wait_sweep(jobs, name, lambda s: s.get("phase") in ("Succeeded", "Failed"), timeout=400,
                            what=f"sweep {name} to end")
        assert status["phase"] == "Succeeded" and status["reason"] == "Completed", status
        trials = status["trials"]
        assert [t["job"] for t in trials] == [f"{name}-t{i}" for i in range(3)] == trial_jobs(jobs, name)
        scored = [t for t in trials if t["state"] == "Succeeded"]
        assert scored and status["best"]["value"] == max(t["value"] for t in scored)
        assert all(t["intermediate"] for t in scored), trials  # the trainer's live accuracy per epoch
        best = jobs.get(status["best"]["job"])
        assert best["status"]["metrics"]["accuracy"] == status["best"]["value"]
        assert best["spec"]["task"]["learningRate"] == status["best"]["parameters"]["learningRate"]
        assert best["spec"]["output"]["uri"].endswith(f"/{name}/{status['best']['job']}")


# -- KWOK trials: cost, budget, pruning, restarts ------------------------------------------------------
def test_the_cost_cap_stops_launching_and_a_budget_refusal_is_a_status(jobs: Jobs, namespace: str) -> None:
    capped = create_sweep(jobs, kwok_sweep("capped", algorithm="Random", maxTrials=3, parallelTrials=3,
                                           maxGpuHours=0.25))
    held = wait_sweep(jobs, capped, lambda s: s.get("reason") == "CostCapReached", what="the cap to hold a trial")
    assert held["cost"]["trialGpuHours"] == 0.1 and held["cost"]["estimatedGpuHours"] == pytest.approx(0.3)
    assert held["cost"]["estimatedCost"] == pytest.approx(0.75)  # a100-eu at 2.5 per GPU-hour
    assert "no BudgetPolicy selects" in held["cost"]["budget"]
    # Recorded in status before their jobs are created; a third would hold 0.3 > 0.25 GPU-hours.
    wait_for(lambda: trial_jobs(jobs, capped) == ["capped-t0", "capped-t1"], what="two trial jobs")
    assert [t["job"] for t in held["trials"]] == ["capped-t0", "capped-t1"]
    for job, accuracy in (("capped-t0", 0.7), ("capped-t1", 0.8)):
        finish(jobs, job, {"accuracy": accuracy})
    wait_for(lambda: trial_jobs(jobs, capped) == ["capped-t0", "capped-t1", "capped-t2"], what="the third trial")
    finish(jobs, "capped-t2", {"accuracy": 0.75})
    done = wait_sweep(jobs, capped, lambda s: s.get("phase") == "Succeeded", what="the sweep to end")
    assert done["best"]["job"] == "capped-t1" and done["counts"]["succeeded"] == 3
    assert 0 < done["cost"]["spentGpuHours"] < 0.05

    policy = f"budget-{namespace}"
    jobs.custom.create_cluster_custom_object(GROUP, VERSION, "budgetpolicies", {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "BudgetPolicy", "metadata": {"name": policy},
        "spec": {"namespaces": [namespace], "gpuHours": 0.05, "period": "Day"},
    })
    try:
        refused = create_sweep(jobs, kwok_sweep("refused", maxTrials=2))
        waiting = wait_sweep(jobs, refused, lambda s: s.get("reason") == "BudgetExceeded", what="the refusal")
        assert waiting["phase"] == "Waiting" and f"BudgetPolicy {policy}" in waiting["message"]
        assert waiting["cost"]["budget"].startswith(f"BudgetPolicy {policy}: ")
        assert not waiting["trials"] and trial_jobs(jobs, refused) == []
        events = jobs.core.list_namespaced_event(namespace, field_selector="involvedObject.name=refused").items
        assert any(e.reason == "BudgetExceeded" for e in events)
    finally:
        jobs.custom.delete_cluster_custom_object(GROUP, VERSION, "budgetpolicies", policy)


def report_epoch(jobs: Jobs, job: str, epoch: int, accuracy: float) -> None:
    """What the trainer's rank 0 writes at the end of an epoch: status.progress with live metrics."""
    progress = {"epoch": epoch, "totalEpochs": 3, "metrics": {"accuracy": accuracy}}
    jobs.custom.patch_namespaced_custom_object_status(GROUP, VERSION, jobs.ns, "trainingjobs", job,
                                                      {"status": {"progress": progress}})


def test_pruning_stops_a_trial_that_falls_behind(jobs: Jobs) -> None:
    name = create_sweep(jobs, kwok_sweep("pruned", maxTrials=3, parallelTrials=3,
                                         pruning={"policy": "Median", "warmupEpochs": 1, "minTrials": 2}))
    wait_for(lambda: len(trial_jobs(jobs, name)) == 3, what="three trials")
    trials = trial_jobs(jobs, name)
    for job in trials:
        jobs.wait_pods(job, 1, phase="Running")
    wait_sweep(jobs, name, lambda s: s.get("counts", {}).get("running") == 3, what="three running trials")
    for job, accuracy in zip(trials, (0.9, 0.85, 0.5), strict=True):
        report_epoch(jobs, job, 2, accuracy)
    status = wait_sweep(jobs, name, lambda s: s.get("counts", {}).get("pruned") == 1, what="a pruned trial")
    pruned = status["trials"][2]
    assert pruned["state"] == "Pruned" and "behind the median 0.875" in pruned["message"], status
    wait_for(lambda: "pruned-t2" not in trial_jobs(jobs, name), what="the pruned trial's job to go")
    frozen, first = pruned["gpuHours"], status["trials"][0]["gpuHours"]
    report_epoch(jobs, trials[0], 3, 0.92)  # the next reconcile: the others' hours grow, the pruned one's do not
    later = wait_sweep(jobs, name, lambda s: "3" in s["trials"][0]["intermediate"], what="epoch 3 of trial 0")
    assert later["trials"][2]["gpuHours"] == frozen and later["trials"][0]["gpuHours"] > first
    assert [t["state"] for t in later["trials"]] == ["Running", "Running", "Pruned"]


def test_an_operator_killed_mid_sweep_neither_repeats_nor_loses_trials(
    jobs: Jobs, operator: OperatorProcess
) -> None:
    name = create_sweep(jobs, kwok_sweep("restarted", algorithm="TPE", maxTrials=4, parallelTrials=2,
                                         startupTrials=2))
    wait_for(lambda: trial_jobs(jobs, name) == ["restarted-t0", "restarted-t1"], what="two trials")
    pods = [jobs.wait_pods(job, 1, phase="Running")[0] for job in ("restarted-t0", "restarted-t1")]
    before = sweep_status(jobs, name)["trials"]
    operator.stop(kill=True)
    try:
        for pod in pods:  # the trials end while no operator runs
            jobs.end_pod(pod.metadata.name, "Succeeded", 0, report({"accuracy": 0.8}))
    finally:
        operator.start()
    wait_for(lambda: len(trial_jobs(jobs, name)) == 4, timeout=60, what="the last two trials")
    after = sweep_status(jobs, name)["trials"]
    assert [t["parameters"] for t in after[:2]] == [t["parameters"] for t in before]
    for job in ("restarted-t2", "restarted-t3"):
        finish(jobs, job, {"accuracy": 0.7})
    done = wait_sweep(jobs, name, lambda s: s.get("phase") == "Succeeded", what="the sweep to end")
    assert [t["job"] for t in done["trials"]] == [f"restarted-t{i}" for i in range(4)] == trial_jobs(jobs, name)
    assert [t["state"] for t in done["trials"]] == ["Succeeded"] * 4 and done["completed"] == "4/4"


def test_promote_best_records_only_the_best_trial_as_a_model_version(
    jobs: Jobs, api: kubernetes.client.ApiClient, namespace: str
) -> None:
    body = kwok_sweep("best", algorithm="Random", maxTrials=2, parallelTrials=2, promoteBest=True)
    body["spec"]["jobTemplate"]["spec"]["model"] = {"name": "swept"}
    name = create_sweep(jobs, body)
    wait_for(lambda: trial_jobs(jobs, name) == ["best-t0", "best-t1"], what="two trials")
    for job, accuracy in (("best-t0", 0.7), ("best-t1", 0.9)):
        finish(jobs, job, {"accuracy": accuracy})
    registry = Registry(api, namespace)
    registry.wait_promoted("swept", "swept-v1")
    version = registry.version("swept-v1")
    assert version is not None
    assert version["spec"]["sourceJob"]["name"] == "best-t1"
    recorded = version["spec"]["provenance"]["sweep"]
    assert recorded["sweep"] == "best" and recorded["trial"] == 1
    assert recorded["parameters"] == sweep_status(jobs, name)["best"]["parameters"]
    assert [p["path"] for p in recorded["searchSpace"]["parameters"]] == ["learningRate", "model.hiddenSizes.0"]
    assert jobs.condition("best-t0", "Promoted") is None and registry.versions("kubetrain.io/model=swept")[1:] == []
