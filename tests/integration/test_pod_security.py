"""Trainer pods meet PodSecurity `restricted`: the API server's own PodSecurity admission, enforced
on a namespace, admits every pod of a PyTorch and of a Ray job (and, as a control, refuses a pod
that is not restricted)."""

from __future__ import annotations

import json

import kubernetes
import pytest

from tests.builders import example
from tests.jobs import Jobs
from tests.operator_process import OperatorProcess

pytestmark = pytest.mark.cluster

RESTRICTED = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
}


@pytest.fixture
def jobs(api: kubernetes.client.ApiClient, namespace: str, operator: OperatorProcess) -> Jobs:
    kubernetes.client.CoreV1Api(api).patch_namespace(namespace, {"metadata": {"labels": RESTRICTED}})
    return Jobs(api, namespace)


def test_pytorch_and_ray_jobs_run_in_a_restricted_namespace(jobs: Jobs) -> None:
    loose = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "loose"},
             "spec": {"containers": [{"name": "c", "image": "x"}]}}
    with pytest.raises(kubernetes.client.exceptions.ApiException) as refused:
        jobs.core.create_namespaced_pod(jobs.ns, loose, dry_run="All")
    assert refused.value.status == 403 and "violates PodSecurity" in refused.value.body

    name = jobs.create(example("pytorch-ddp.yaml"))
    for pod in jobs.wait_pods(name, 2, phase="Running"):
        assert pod.spec.security_context.run_as_non_root is True
        assert pod.spec.containers[0].security_context.allow_privilege_escalation is False
        jobs.end_pod(pod.metadata.name, "Succeeded", 0)
    jobs.wait_phase(name, "Succeeded")

    ray = jobs.create(example("ray-train.yaml"))
    pods = jobs.wait_pods(ray, 3, phase="Running")
    report = {"outcome": "Succeeded", "reason": "Completed", "message": "done", "metrics": {"accuracy": 0.9}}
    jobs.end_pod(f"{ray}-head", "Succeeded", 0, json.dumps(report))
    jobs.wait_phase(ray, "Succeeded")
    assert all(p.spec.security_context.seccomp_profile.type == "RuntimeDefault" for p in pods)
