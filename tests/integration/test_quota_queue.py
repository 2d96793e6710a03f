"""A job whose group does not fit the namespace's ResourceQuota waits Queued (reason
QuotaExceeded) with no pod created, instead of getting some pods created and the rest refused,
and starts whole once the quota is raised."""

from __future__ import annotations

import copy

import kubernetes
import pytest

from kubetrain.devcluster.cluster import LocalCluster
from tests.builders import example
from tests.jobs import Jobs
from tests.operator_process import OperatorProcess

pytestmark = pytest.mark.cluster


@pytest.fixture
def jobs(api: kubernetes.client.ApiClient, namespace: str, operator: OperatorProcess) -> Jobs:
    return Jobs(api, namespace)


def test_a_group_over_quota_is_queued_whole_and_starts_when_the_quota_is_raised(
    jobs: Jobs, cluster: LocalCluster
) -> None:
    quota = {"metadata": {"name": "gpus"}, "spec": {"hard": {"requests.nvidia.com/gpu": "3"}}}
    jobs.core.create_namespaced_resource_quota(jobs.ns, quota)
    manifest = copy.deepcopy(example("pytorch-ddp.yaml"))
    manifest["spec"].update(workers=2, resources={"gpus": 2})  # 4 GPUs in all

    name = jobs.create(manifest)

    status = jobs.wait_phase(name, "Queued")
    queued = next(c for c in status["conditions"] if c["type"] == "Queued")
    assert queued["reason"] == "QuotaExceeded", queued
    assert "ResourceQuota gpus: 2 pods need requests.nvidia.com/gpu 4, 3 of 3 left" in queued["message"], queued
    assert jobs.pods(name) == []
    row = cluster.kubectl("get", "tj", name, "-n", jobs.ns, "--no-headers").stdout.split()
    assert row[1] == "Queued" and "QuotaExceeded" in row, row

    jobs.core.patch_namespaced_resource_quota("gpus", jobs.ns, {"spec": {"hard": {"requests.nvidia.com/gpu": "4"}}})

    jobs.wait_pods(name, 2, phase="Running", timeout=60)
    assert [e.reason for e in jobs.events(name) if e.type == "Warning"] == []
