"""Native gang placement on the real control plane, whose kube-apiserver and kube-scheduler run
with the GenericWorkload gate and serve scheduling.k8s.io/v1beta1 (devcluster/cluster.py): two
jobs of 12 GPUs each on the 16 GPUs of the h100-us pool (2 KWOK nodes x 8). With a PodGroup per
attempt, one job gets every pod bound and the other none, until the first finishes; a job that
opts out (runPolicy.gangScheduling Off) is placed pod by pod and holds part of the pool. Where
the API is not served, the operator says so once and renders no group."""

from __future__ import annotations

import copy
import logging
import time
from pathlib import Path
from typing import Any

import kubernetes
import pytest

from kubetrain.controller.config import OperatorConfig
from kubetrain.controller.gang import pod_groups_served
from kubetrain.controller.kube import Kube
from kubetrain.controller.metrics import OperatorMetrics
from kubetrain.devcluster.cluster import LocalCluster
from tests.builders import example
from tests.helpers import admin_client, wait_for
from tests.jobs import Jobs
from tests.operator_process import OperatorProcess

pytestmark = pytest.mark.cluster

WORKERS, GPUS = 3, 4  # 12 of the pool's 16 GPUs: two such jobs never fit together
# How long the job that did not get the pool is watched for a pod bound against its gang.
NONE_BOUND_WINDOW = 8.0


@pytest.fixture
def jobs(api: kubernetes.client.ApiClient, namespace: str, operator: OperatorProcess) -> Jobs:
    return Jobs(api, namespace)


def gang_job(name: str, **run_policy: Any) -> dict[str, Any]:
    manifest = copy.deepcopy(example("pytorch-ddp.yaml"))
    manifest["metadata"]["name"] = name
    manifest["spec"].update(workers=WORKERS, nodePool="h100-us", resources={"gpus": GPUS}, runPolicy=run_policy)
    return manifest


def bound(jobs: Jobs, name: str) -> list[str]:
    return [p.metadata.name for p in jobs.pods(name) if p.spec.node_name]


def holder(jobs: Jobs, names: tuple[str, str]) -> str | None:
    """The job every one of whose pods runs, if one does."""
    for name in names:
        pods = jobs.pods(name)
        if len(pods) == WORKERS and all(p.status.phase == "Running" for p in pods):
            return name
    return None


def test_two_gangs_that_do_not_fit_together_get_all_or_nothing(jobs: Jobs, cluster: LocalCluster) -> None:
    names = (jobs.create(gang_job("gang-a")), jobs.create(gang_job("gang-b")))

    winner = wait_for(lambda: holder(jobs, names), timeout=90, what="one gang with every pod running") or ""
    loser = names[1] if winner == names[0] else names[0]
    deadline = time.monotonic() + NONE_BOUND_WINDOW
    while time.monotonic() < deadline:
        assert bound(jobs, loser) == [], f"{loser} got pods bound while {winner} holds the pool"
        time.sleep(0.5)
    groups = cluster.kubectl("get", "podgroups.scheduling.k8s.io", "-n", jobs.ns,
                             "-o", "jsonpath={range .items[*]}{.metadata.name}={.spec.schedulingPolicy.gang.minCount} "
                             "{end}").stdout.split()
    assert sorted(groups) == [f"gang-a-a0={WORKERS}", f"gang-b-a0={WORKERS}"]
    assert all(p.spec.scheduling_group.pod_group_name == f"{loser}-a0" for p in jobs.pods(loser))

    for pod in jobs.pods(winner):
        jobs.end_pod(pod.metadata.name, "Succeeded", exit_code=0)
    jobs.wait_phase(winner, "Succeeded")
    jobs.wait_pods(loser, WORKERS, phase="Running", timeout=90)
    jobs.wait_phase(loser, "Running")


def test_a_job_that_opts_out_is_placed_pod_by_pod(jobs: Jobs) -> None:
    first = jobs.create(gang_job("whole"))
    jobs.wait_pods(first, WORKERS, phase="Running", timeout=90)

    partial = jobs.create(gang_job("partial", gangScheduling="Off"))

    wait_for(lambda: len(bound(jobs, partial)) == 1 or None, timeout=60, what=f"one pod of {partial} bound")
    assert len(bound(jobs, partial)) == 1  # the 4 GPUs left take one worker; the others wait


def test_where_podgroups_are_not_served_the_operator_says_so_and_renders_none(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A cluster of its own, whose API server is told not to serve the group version (the flag
    given last wins over the dev cluster's own)."""
    local = LocalCluster(tmp_path / "cluster", local_node=False,
                         apiserver_args=["--runtime-config=scheduling.k8s.io/v1beta1=false"])
    try:
        local.start()
        with admin_client(local.kubeconfig) as api, caplog.at_level(logging.INFO, logger="kubetrain.gang"):
            served = pod_groups_served(Kube(api, OperatorMetrics()), OperatorConfig())
    finally:
        local.stop()

    assert not served
    assert not OperatorConfig().plan_inputs(served).render.gang_scheduling
    [said] = [r for r in caplog.records if r.name == "kubetrain.gang"]
    assert said.levelno == logging.WARNING and "does not serve scheduling.k8s.io/v1beta1 podgroups" in said.message
