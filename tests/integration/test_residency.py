"""Data residency on the real control plane: the webhook registered with the kube-apiserver
refuses, the reconcile re-checks when policies change, and the scheduler keeps pods in the
allowed region."""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import kubernetes
import pytest
import yaml
from kubernetes.client.exceptions import ApiException

from kubetrain.devcluster.cluster import LocalCluster
from kubetrain.devcluster.nodepools import default_pools, node_manifests
from tests.builders import JobBuilder
from tests.helpers import wait_for
from tests.jobs import GROUP, VERSION, Jobs
from tests.operator_process import OperatorProcess
from tests.residency_cases import (
    CASES,
    EU_CLAIM,
    EU_CLASS,
    US_CLAIM,
    US_CLASS,
    eu_policy,
    refused_field,
)

pytestmark = pytest.mark.cluster

POLICIES = "dataresidencypolicies"
REGION = "topology.kubernetes.io/region"
# A job that the cpu pool (one node per region) can hold and that passes the eu-only policy.
CPU_JOB = {"nodePool": "cpu", "resources": {"cpu": "100m", "memory": "64Mi", "gpus": 0}}

PolicyFactory = Callable[[dict[str, Any]], dict[str, Any]]


@pytest.fixture
def jobs(api: kubernetes.client.ApiClient, namespace: str, operator: OperatorProcess) -> Jobs:
    return Jobs(api, namespace)


@pytest.fixture
def policy(api: kubernetes.client.ApiClient, namespace: str) -> Iterator[PolicyFactory]:
    """Creates cluster-scoped policies named after the test namespace; deletes them afterwards."""
    custom = kubernetes.client.CustomObjectsApi(api)
    created: list[str] = []

    def create(body: dict[str, Any]) -> dict[str, Any]:
        body = copy.deepcopy(body)
        body["metadata"]["name"] = f"{namespace}-{body['metadata']['name']}"
        created.append(body["metadata"]["name"])
        return custom.create_cluster_custom_object(GROUP, VERSION, POLICIES, body)

    yield create
    for name in created:
        custom.delete_cluster_custom_object(GROUP, VERSION, POLICIES, name)


def patch_policy(api: kubernetes.client.ApiClient, name: str, spec: dict[str, Any]) -> None:
    kubernetes.client.CustomObjectsApi(api).patch_cluster_custom_object(GROUP, VERSION, POLICIES, name, {"spec": spec})


def create_job(jobs: Jobs, name: str, overrides: dict[str, Any]) -> str:
    manifest = JobBuilder.eu(name, jobs.ns).merge(**overrides).manifest()
    jobs.custom.create_namespaced_custom_object(GROUP, VERSION, jobs.ns, "trainingjobs", manifest)
    return name


def reason_of(jobs: Jobs, name: str, type_: str) -> str | None:
    condition = jobs.condition(name, type_)
    return f"{condition['status']}/{condition['reason']}" if condition else None


def test_kubectl_apply_of_us_data_in_an_eu_namespace_is_refused_by_the_api_server(
    cluster: LocalCluster, namespace: str, operator: OperatorProcess, policy: PolicyFactory
) -> None:
    # Selected by label, as a cluster admin would do it.
    eu = eu_policy("eu-only", [])
    eu["spec"].pop("namespaces")
    eu["spec"]["namespaceSelector"] = {"matchLabels": {"residency": f"eu-{namespace}"}}
    created = policy(eu)
    cluster.kubectl("label", "namespace", namespace, f"residency=eu-{namespace}")
    us_data = JobBuilder.eu("us-data", namespace).merge(dataset={"uri": "s3://us-bucket/datasets/train.csv"})
    manifest = us_data.manifest()

    result = cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(manifest), check=False)

    assert result.returncode != 0
    assert 'admission webhook "residency.kubetrain-residency.kubetrain.io" denied the request' in result.stderr
    assert "spec.dataset.uri: 's3://us-bucket/datasets/train.csv'" in result.stderr, result.stderr
    assert f"DataResidencyPolicy {created['metadata']['name']} spec.allowedData" in result.stderr
    assert "allowed: s3://eu-*/datasets/**" in result.stderr
    assert cluster.kubectl("get", "tj", "-n", namespace, "-o", "name").stdout.strip() == ""
    # The same manifest with EU data is admitted.
    manifest["spec"]["dataset"]["uri"] = "s3://eu-data/datasets/train.csv"
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(manifest))


def test_writes_are_refused_while_the_operator_is_down_but_deletes_are_not(
    jobs: Jobs, operator: OperatorProcess
) -> None:
    """The webhook registration outlives the operator on purpose (failurePolicy Fail), so no job
    is written unchecked while it is down: creates and spec updates are refused. A label change
    never reaches the webhooks (their matchConditions), nor does a delete: both go through."""
    name = create_job(jobs, "before", {**CPU_JOB, "runPolicy": {"suspend": True}})
    label = {"metadata": {"labels": {"reviewed": "yes"}}}
    operator.stop()
    try:
        with pytest.raises(ApiException) as created:
            create_job(jobs, "while-down", CPU_JOB)
        with pytest.raises(ApiException) as updated:
            jobs.patch_spec(name, {"workers": 2})
        jobs.custom.patch_namespaced_custom_object(GROUP, VERSION, jobs.ns, "trainingjobs", name, label)
        assert jobs.get(name)["metadata"]["labels"]["reviewed"] == "yes"
        jobs.delete(name)
    finally:
        operator.start()
    for refused in (created.value, updated.value):
        assert "failed calling webhook" in str(refused.body), refused.body
    assert not jobs.exists("while-down")
    wait_for(lambda: not jobs.exists(name), what="the job deleted while the operator was down")


def test_every_bypass_attempt_is_refused_by_the_api_server(
    api: kubernetes.client.ApiClient, jobs: Jobs, policy: PolicyFactory
) -> None:
    created = policy(eu_policy("eu-only", [jobs.ns]))
    for claim, storage_class in ((US_CLAIM, US_CLASS), (EU_CLAIM, EU_CLASS)):
        jobs.core.create_namespaced_persistent_volume_claim(jobs.ns, {
            "metadata": {"name": claim},
            "spec": {"storageClassName": storage_class, "accessModes": ["ReadWriteOnce"],
                     "resources": {"requests": {"storage": "1Gi"}}},
        })
    # Suspended, so the admitted control jobs start no pods.
    hold = {"runPolicy": {"suspend": True}}
    create_job(jobs, "control", hold)
    create_job(jobs, "control-pvc", {**hold, "dataset": {"uri": f"pvc://{EU_CLAIM}/datasets/x.csv"}})
    admitted = []
    for case, overrides in CASES:
        try:
            create_job(jobs, f"bypass-{len(admitted)}-{case}"[:63].rstrip("-"), {**overrides, **hold})
        except ApiException as exc:
            assert_refused_for_its_field(exc, case, created["metadata"]["name"])
        else:
            admitted.append(case)
    assert admitted == []


def assert_refused_for_its_field(exc: ApiException, case: str, policy_name: str) -> None:
    """Refused for the right reason: by the residency webhook naming the policy and the case's
    field (403), or by the CRD schema for the data URI's shape (422), as the pure table says."""
    body = str(exc.body)
    if exc.status == 422:
        assert "spec.dataset.uri" in body and "should match" in body, (case, body)
        return
    assert exc.status == 403, (case, exc.status, body)
    assert "refused by data residency" in body and f"DataResidencyPolicy {policy_name}" in body, (case, body)
    assert refused_field(case) in body, (case, body)


def test_policy_tightened_after_admission_stops_a_pending_job_before_pods_exist(
    api: kubernetes.client.ApiClient, jobs: Jobs, policy: PolicyFactory
) -> None:
    # No pod can be created in this namespace, so the admitted job waits, Queued for the quota.
    quota = {"metadata": {"name": "no-pods"}, "spec": {"hard": {"pods": "0"}}}
    jobs.core.create_namespaced_resource_quota(jobs.ns, quota)
    created = policy(eu_policy("eu-only", [jobs.ns]))
    name = create_job(jobs, "pending", CPU_JOB)
    wait_for(lambda: reason_of(jobs, name, "ResidencyCompliant") == "True/Compliant", timeout=20, what="compliant")
    assert jobs.status(name)["phase"] == "Queued"

    patch_policy(api, created["metadata"]["name"], {"allowedNodePools": ["a100-eu"]})

    status = jobs.wait_phase(name, "Failed", timeout=20)
    failed = jobs.condition(name, "Failed")
    residency = jobs.condition(name, "ResidencyCompliant")
    assert failed is not None and failed["reason"] == "ResidencyViolation"
    assert residency is not None and (residency["status"], residency["reason"]) == ("False", "ResidencyViolation")
    assert "spec.nodePool: 'cpu'" in residency["message"] and "allowed: a100-eu" in residency["message"]
    assert status["phase"] == "Failed"
    assert not jobs.pods(name, include_terminating=True)
    wait_for(lambda: any(e.reason == "ResidencyViolation" and e.type == "Warning" for e in jobs.events(name)),
             timeout=10, what="ResidencyViolation event")


def test_running_job_whose_policy_tightens_is_stopped(
    api: kubernetes.client.ApiClient, jobs: Jobs, policy: PolicyFactory
) -> None:
    created = policy(eu_policy("eu-only", [jobs.ns]))
    name = create_job(jobs, "running", CPU_JOB)
    jobs.wait_pods(name, 1, phase="Running", timeout=30)

    patch_policy(api, created["metadata"]["name"], {"allowedData": [{"scheme": "s3", "bucket": "eu-other"}]})

    jobs.wait_phase(name, "Failed", timeout=20)
    assert reason_of(jobs, name, "ResidencyCompliant") == "False/ResidencyViolation"
    wait_for(lambda: not jobs.pods(name, include_terminating=True), timeout=30, what="pods deleted")
    # Spec edits are judged against the new policy; metadata-only updates (labels, finalizers,
    # garbage collection) still go through, so the job can always be relabelled and deleted.
    with pytest.raises(ApiException) as refused:
        jobs.patch_spec(name, {"workers": 2})
    assert refused.value.status == 403 and "spec.dataset.uri" in str(refused.value.body)
    jobs.custom.patch_namespaced_custom_object(
        GROUP, VERSION, jobs.ns, "trainingjobs", name, {"metadata": {"labels": {"reviewed": "yes"}}}
    )


def test_pods_stay_in_the_allowed_region_even_on_a_pool_spanning_both(
    jobs: Jobs, policy: PolicyFactory
) -> None:
    policy(eu_policy("eu-only", [jobs.ns]))
    name = create_job(jobs, "spread", {**CPU_JOB, "workers": 4})
    pods = jobs.wait_pods(name, 4, phase="Running", timeout=40)
    nodes = {n.metadata.name: n.metadata.labels for n in jobs.core.list_node().items}
    for pod in pods:
        assert nodes[pod.spec.node_name][REGION] == "eu-west-1", pod.spec.node_name
        assert nodes[pod.spec.node_name]["kubetrain.io/node-pool"] == "cpu"
        [term] = pod.spec.affinity.node_affinity.required_during_scheduling_ignored_during_execution.node_selector_terms
        assert [(e.key, e.operator, e.values) for e in term.match_expressions] == [(REGION, "In", ["eu-west-1"])]
    assert reason_of(jobs, name, "ResidencyCompliant") == "True/Compliant"


def test_audit_mode_admits_and_runs_but_records_the_violation(
    cluster: LocalCluster, jobs: Jobs, policy: PolicyFactory
) -> None:
    policy(eu_policy("eu-audit", [jobs.ns], enforcement="Audit"))
    audited = JobBuilder.eu("audited", jobs.ns).merge(**CPU_JOB, dataset={"uri": "s3://us-bucket/datasets/x.csv"})
    manifest = audited.manifest()

    result = cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(manifest))

    assert "Warning: data residency (Audit): spec.dataset.uri" in result.stderr, result.stderr
    jobs.wait_pods("audited", 1, phase="Running", timeout=30)
    residency = jobs.condition("audited", "ResidencyCompliant")
    assert residency is not None
    assert (residency["status"], residency["reason"]) == ("False", "ResidencyViolationAudited")
    assert "s3://us-bucket" in residency["message"]
    wait_for(
        lambda: any(e.reason == "ResidencyViolationAudited" and e.type == "Warning" for e in jobs.events("audited")),
        timeout=10,
        what="audit event",
    )


def test_a_relabelled_namespace_stops_a_job_running_in_another_region_without_any_pod_event(
    cluster: LocalCluster, jobs: Jobs, policy: PolicyFactory
) -> None:
    eu = eu_policy("eu-only", [])
    eu["spec"].pop("namespaces")
    eu["spec"]["namespaceSelector"] = {"matchLabels": {"residency": f"eu-{jobs.ns}"}}
    policy(eu)
    # Unselected for now: a preferred affinity is free to take the job's pod to us-east-1.
    prefer_us = {
        "podTemplate": {
            "spec": {
                "affinity": {
                    "nodeAffinity": {
                        "preferredDuringSchedulingIgnoredDuringExecution": [
                            {
                                "weight": 100,
                                "preference": {
                                    "matchExpressions": [{"key": REGION, "operator": "In", "values": ["us-east-1"]}]
                                },
                            },
                        ]
                    }
                }
            }
        }
    }
    name = create_job(jobs, "moved", {**CPU_JOB, **prefer_us})
    [pod] = jobs.wait_pods(name, 1, phase="Running", timeout=30)
    node = pod.spec.node_name
    assert jobs.core.read_node(node).metadata.labels[REGION] == "us-east-1"
    wait_for(lambda: reason_of(jobs, name, "ResidencyCompliant") == "True/NoPolicy", timeout=20, what="NoPolicy")

    cluster.kubectl("label", "namespace", jobs.ns, f"residency=eu-{jobs.ns}")

    # No pod or policy event follows: the re-check period (30 s, labels cached 30 s) finds it.
    jobs.wait_phase(name, "Failed", timeout=90)
    residency = jobs.condition(name, "ResidencyCompliant")
    assert residency is not None and (residency["status"], residency["reason"]) == ("False", "ResidencyViolation")
    assert f"pod {pod.metadata.name}: 'node {node}'" in residency["message"], residency["message"]
    assert "runs in region us-east-1" in residency["message"]
    wait_for(lambda: not jobs.pods(name, include_terminating=True), timeout=30, what="pods deleted")


def test_a_compliant_job_whose_node_vanishes_is_not_failed_for_residency(
    cluster: LocalCluster, jobs: Jobs, policy: PolicyFactory, operator: OperatorProcess
) -> None:
    """A reclaimed spot node: its Node object is deleted under the running pod, and an operator
    (re)started then has never seen the node. Its region can no longer be read, which is no
    violation (only an existing node without a region label is); the pod is lost, not misplaced."""
    policy(eu_policy("eu-only", [jobs.ns]))
    name = create_job(jobs, "reclaimed", CPU_JOB)
    [pod] = jobs.wait_pods(name, 1, phase="Running", timeout=30)
    wait_for(lambda: reason_of(jobs, name, "ResidencyCompliant") == "True/Compliant", timeout=20, what="Compliant")
    node = pod.spec.node_name
    [manifest] = [n for p in default_pools() for n in node_manifests(p) if n["metadata"]["name"] == node]
    operator.stop()
    jobs.core.delete_node(node)
    try:
        operator.start()  # judges the job at once, its pod still bound to the deleted node
        time.sleep(10)
        assert reason_of(jobs, name, "ResidencyCompliant") == "True/Compliant"
        assert jobs.status(name).get("phase") != "Failed", jobs.status(name)
    finally:
        cluster.kubectl("apply", "-f", "-", input=json.dumps(manifest))
        wait_for(lambda: any(c.type == "Ready" and c.status == "True"
                             for c in jobs.core.read_node(node).status.conditions or []), timeout=60, what="node back")
