"""GitOps on the real control plane: what a GitOps tool applies stays exactly as applied while
the operator runs the job; the operator owns only status, and `kubectl diff` stays empty."""

from __future__ import annotations

from typing import Any

import kubernetes
import pytest

from kubetrain.devcluster.cluster import LocalCluster
from tests.builders import EXAMPLES
from tests.jobs import Jobs
from tests.operator_process import OperatorProcess

pytestmark = pytest.mark.cluster

EXAMPLE = str(EXAMPLES / "pytorch-ddp.yaml")
NAME = "pytorch-ddp"
GITOPS_MANAGER = "gitops-tool"


@pytest.fixture
def jobs(api: kubernetes.client.ApiClient, namespace: str, operator: OperatorProcess) -> Jobs:
    return Jobs(api, namespace)


def run_to_success(jobs: Jobs) -> None:
    for pod in jobs.wait_pods(NAME, 2, phase="Running"):
        jobs.end_pod(pod.metadata.name, "Succeeded", 0)
    jobs.wait_phase(NAME, "Succeeded")


def owners_of(job: dict[str, Any], field: str) -> set[str]:
    """The field managers whose managedFields entry owns `field` (e.g. 'f:spec') of the main
    resource or its status subresource."""
    return {entry["manager"] for entry in job["metadata"]["managedFields"] if field in (entry.get("fieldsV1") or {})}


def test_client_side_apply_twice_is_unchanged_and_diff_is_empty_after_the_job_ran(
    cluster: LocalCluster, jobs: Jobs, namespace: str
) -> None:
    first = cluster.kubectl("apply", "-n", namespace, "-f", EXAMPLE).stdout
    assert f"trainingjob.kubetrain.io/{NAME} created" in first
    run_to_success(jobs)
    job = jobs.get(NAME)

    second = cluster.kubectl("apply", "-n", namespace, "-f", EXAMPLE).stdout
    assert f"trainingjob.kubetrain.io/{NAME} unchanged" in second
    after = jobs.get(NAME)
    assert after["metadata"]["generation"] == job["metadata"]["generation"] == 1
    assert after["metadata"]["resourceVersion"] == job["metadata"]["resourceVersion"]
    assert not after["metadata"].get("finalizers")
    assert [k for k in after["metadata"].get("annotations", {}) if "kopf" in k] == []

    diff = cluster.kubectl("diff", "-n", namespace, "-f", EXAMPLE, check=False)
    assert diff.returncode == 0, diff.stdout + diff.stderr


def test_server_side_apply_keeps_spec_owned_by_the_applier_only(
    cluster: LocalCluster, jobs: Jobs, namespace: str
) -> None:
    apply = ("apply", "--server-side", f"--field-manager={GITOPS_MANAGER}", "-n", namespace, "-f", EXAMPLE)
    assert "serverside-applied" in cluster.kubectl(*apply).stdout
    run_to_success(jobs)
    job = jobs.get(NAME)

    assert owners_of(job, "f:spec") == {GITOPS_MANAGER}
    assert GITOPS_MANAGER not in owners_of(job, "f:status")
    assert "kubetrain-operator" in owners_of(job, "f:status")
    for entry in job["metadata"]["managedFields"]:
        if entry["manager"] != GITOPS_MANAGER:
            assert entry.get("subresource") == "status", entry

    # Re-applying (a GitOps sync) conflicts with nobody and changes nothing.
    cluster.kubectl(*apply)
    again = jobs.get(NAME)
    assert again["metadata"]["resourceVersion"] == job["metadata"]["resourceVersion"]
    diff = cluster.kubectl("diff", "--server-side", f"--field-manager={GITOPS_MANAGER}", "-n", namespace,
                           "-f", EXAMPLE, check=False)
    assert diff.returncode == 0, diff.stdout + diff.stderr
