"""Elastic PyTorch jobs on the executing local node, with real training processes: torchrun's agent
in every pod (the trainer's entrypoint starts it), the operator following the group's membership.
Capacity comes and goes as on a spot pool: a NoSchedule taint stands for a reclaimed pool, a pod
that holds the node's spare CPU for capacity another job uses."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import yaml

from kubetrain.devcluster.cluster import LocalCluster
from kubetrain.devcluster.localnode.agent import LOCAL_TAINT
from tests.builders import example, merge
from tests.helpers import wait_for
from tests.jobs import Jobs
from tests.local_training import ACCURACY_BAR, assert_ranks_trained_in_sync, wait_succeeded_while_alive
from tests.operator_process import OperatorProcess

pytestmark = [pytest.mark.cluster, pytest.mark.training]

NODE = "local-0"
RECLAIMED = {"key": "kubetrain.io/reclaimed", "value": "true", "effect": "NoSchedule"}


@pytest.fixture
def jobs(api: kubernetes.client.ApiClient, namespace: str, operator: OperatorProcess) -> Jobs:
    return Jobs(api, namespace)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("elastic-data") / "tabular.csv"
    subprocess.run([sys.executable, "-m", "kubetrain_trainer.datagen", "tabular", "--out", str(path), "--rows",
                    "2000", "--seed", "0"], check=True)
    return path


def elastic_job(name: str, data: Path, output: Path, workers: int, min_workers: int, **spec: Any) -> dict[str, Any]:
    manifest = example("pytorch-ddp-local.yaml")
    manifest["metadata"]["name"] = name
    return merge(manifest, {"spec": {
        "workers": workers,
        "elastic": {"minWorkers": min_workers},
        "dataset": {"uri": f"file://{data}"},
        "output": {"uri": f"file://{output}"},
        **spec,
    }})


def set_taints(core: kubernetes.client.CoreV1Api, taints: list[dict[str, str]]) -> None:
    core.patch_node(NODE, {"spec": {"taints": taints}})


@pytest.fixture
def reclaimable(api: kubernetes.client.ApiClient) -> Iterator[kubernetes.client.CoreV1Api]:
    """The local node, given back untainted whatever the test did to it."""
    core = kubernetes.client.CoreV1Api(api)
    try:
        yield core
    finally:
        set_taints(core, [LOCAL_TAINT])


def training_under_way(jobs: Jobs, name: str, step: int = 30) -> dict[str, Any]:
    return wait_for(
        lambda: (s := jobs.status(name)).get("progress", {}).get("step", 0) >= step and s,
        timeout=300, what=f"{name} training past step {step}",
    )


def membership_events(jobs: Jobs, name: str) -> list[str]:
    return [e.message for e in jobs.events(name) if e.reason == "MembershipChanged"]


def test_losing_a_worker_above_the_minimum_finishes_with_the_survivors(
    jobs: Jobs, cluster: LocalCluster, data: Path, tmp_path: Path, reclaimable: kubernetes.client.CoreV1Api
) -> None:
    """3 workers, at least 2: the pool is reclaimed (no new pod fits) and worker 2's pod deleted.
    Workers 0 and 1 re-form in their running pods and finish, the replacement waits for a node."""
    name = "elastic-loss"
    jobs.create(elastic_job(name, data, tmp_path / "output", 3, 2, task={
        **example("pytorch-ddp-local.yaml")["spec"]["task"], "epochs": 60, "checkpointEverySteps": 20}))
    jobs.wait_phase(name, "Running", timeout=300)
    training_under_way(jobs, name)
    set_taints(reclaimable, [LOCAL_TAINT, RECLAIMED])
    jobs.core.delete_namespaced_pod(f"{name}-worker-2", jobs.ns)

    status = wait_succeeded_while_alive(jobs, name, cluster.state_dir / "localnode" / "pods")
    assert status["restarts"] == 0, status
    assert status["elastic"]["membershipChanges"] >= 1 and status["workerReplacements"] == 1, status
    assert status["metrics"]["accuracy"] >= ACCURACY_BAR, status["metrics"]
    assert_ranks_trained_in_sync(tmp_path / "output", world_size=2)
    [lost] = membership_events(jobs, name)
    assert "re-forms with 2 workers" in lost


def test_a_job_started_at_two_of_four_grows_to_four_when_capacity_appears(
    jobs: Jobs, cluster: LocalCluster, data: Path, tmp_path: Path
) -> None:
    """Another pod holds all but 2 workers' worth of the node's CPU: the job runs with 2 of 4. Once
    that pod is gone the other 2 are scheduled and join, and the trainer resumes in a group of 4
    (its run is long enough to still be training then; the job is not waited for to the end)."""
    name = "elastic-grow"
    core = jobs.core
    blocker = _hold_all_but(core, jobs.ns, cpu_left=2 * 3)
    try:
        jobs.create(elastic_job(name, data, tmp_path / "output", 4, 2, resources={"cpu": "3", "memory": "1Gi"},
                                task={**example("pytorch-ddp-local.yaml")["spec"]["task"], "epochs": 2000}))
        running = jobs.wait_phase(name, "Running", timeout=300)
        assert running["elastic"]["workers"] == 2, running
        waiting = [p.metadata.name for p in jobs.pods(name) if p.status.phase == "Pending"]
        assert waiting == [f"{name}-worker-2", f"{name}-worker-3"], waiting
        training_under_way(jobs, name, step=20)
    finally:
        core.delete_namespaced_pod(blocker, jobs.ns, grace_period_seconds=0)

    wait_for(lambda: jobs.status(name).get("elastic", {}).get("workers") == 4 or None, timeout=300,
             what="the group to grow to 4 workers")
    log = next((cluster.state_dir / "localnode" / "pods").glob(f"{jobs.ns}_{name}-worker-0_*")) / "output.log"
    resumed = wait_for(lambda: [r for r in _events(log, "resumed") if r["world_size"] == 4] or None, timeout=300,
                       what="the trainer to resume in a group of 4")
    step = resumed[0]["step"]
    wait_for(lambda: jobs.status(name).get("progress", {}).get("step", 0) > step + 10 or None, timeout=300,
             what="training to go on with 4 workers")
    status = jobs.status(name)
    assert status["restarts"] == 0 and "workerReplacements" not in status, status
    assert status["elastic"]["membershipChanges"] >= 1, status
    assert any("to 4 workers" in m for m in membership_events(jobs, name))
    assert status["phase"] == "Running", status


def _events(log: Path, name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines()
            if line.startswith("{") and f'"event": "{name}"' in line]


def test_falling_below_the_minimum_restarts_the_whole_group(jobs: Jobs, data: Path, tmp_path: Path) -> None:
    name = "elastic-below"
    jobs.create(elastic_job(name, data, tmp_path / "output", 3, 2, task={
        **example("pytorch-ddp-local.yaml")["spec"]["task"], "epochs": 300}))
    jobs.wait_phase(name, "Running", timeout=300)
    for index in (1, 2):
        jobs.core.delete_namespaced_pod(f"{name}-worker-{index}", jobs.ns)

    wait_for(lambda: jobs.status(name).get("restarts") == 1 or None, timeout=120, what="a whole-group restart")
    restarting = jobs.condition(name, "Restarting")
    assert restarting is not None and restarting["reason"] == "BelowMinWorkers", restarting
    assert "fewer than spec.elastic.minWorkers (2)" in restarting["message"]
    pods = jobs.wait_pods(name, 3, timeout=120)
    assert {p.metadata.labels["kubetrain.io/attempt"] for p in pods} == {"1"}
    jobs.wait_phase(name, "Running", timeout=300)


def _hold_all_but(core: kubernetes.client.CoreV1Api, namespace: str, cpu_left: int) -> str:
    """A pod on the local node requesting all of its free CPU but `cpu_left` cores."""
    node = core.read_node(NODE)
    allocatable = int(node.status.allocatable["cpu"])
    used = 0.0
    for pod in core.list_pod_for_all_namespaces(field_selector=f"spec.nodeName={NODE}").items:
        if pod.status.phase in ("Succeeded", "Failed"):
            continue
        for container in pod.spec.containers:
            request = ((container.resources and container.resources.requests) or {}).get("cpu", "0")
            used += float(request[:-1]) / 1000 if request.endswith("m") else float(request)
    hold = allocatable - used - cpu_left
    assert hold > 0, f"the local node has only {allocatable - used} CPUs free"
    body = yaml.safe_load(textwrap.dedent(f"""
        metadata: {{name: capacity-holder}}
        spec:
          nodeSelector: {{kubetrain.io/node-pool: local}}
          tolerations: [{{key: kubetrain.io/local, operator: Exists, effect: NoSchedule}}]
          restartPolicy: Never
          containers:
          - name: hold
            image: unused:local
            command: [python, -c, "import time; time.sleep(3600)"]
            resources: {{requests: {{cpu: "{int(hold * 1000)}m"}}}}
    """))
    core.create_namespaced_pod(namespace, body)
    wait_for(lambda: core.read_namespaced_pod("capacity-holder", namespace).spec.node_name or None, timeout=60,
             what="the capacity holder to be placed")
    return "capacity-holder"
