"""Specs refused before they exist, through the real kube-apiserver: the CRD's CEL rules and the
operator's `spec` validating webhook (rules the free-form pod template cannot state in a schema)."""

from __future__ import annotations

from typing import Any

import kubernetes
import pytest
from kubernetes.client.exceptions import ApiException

from tests.builders import JobBuilder
from tests.helpers import wait_for
from tests.jobs import GROUP, PLURAL, VERSION, Jobs
from tests.operator_process import OperatorProcess

pytestmark = pytest.mark.cluster

HOLD = {"runPolicy": {"suspend": True}}


@pytest.fixture
def jobs(api: kubernetes.client.ApiClient, namespace: str, operator: OperatorProcess) -> Jobs:
    return Jobs(api, namespace)


def refusal(jobs: Jobs, name: str, overrides: dict[str, Any]) -> ApiException:
    with pytest.raises(ApiException) as refused:
        jobs.custom.create_namespaced_custom_object(
            GROUP, VERSION, jobs.ns, PLURAL, JobBuilder.eu(name, jobs.ns).merge(**{**overrides, **HOLD}).manifest()
        )
    return refused.value


def test_duplicate_spec_env_is_refused_by_the_crd_naming_the_variable(jobs: Jobs) -> None:
    refused = refusal(jobs, "dup-env", {"env": [{"name": "LR", "value": "1"}, {"name": "LR", "value": "2"}]})
    assert refused.status == 422
    body = str(refused.body)
    assert "spec.env[1]: Duplicate value" in body and "LR" in body, body


def test_duplicate_template_env_is_refused_by_the_webhook_naming_the_variable(jobs: Jobs) -> None:
    template = {"podTemplate": {"spec": {"containers": [
        {"name": "trainer", "env": [{"name": "LR", "value": "1"}]},
        {"name": "sync", "image": "busybox", "env": [{"name": "X", "value": "1"}, {"name": "X", "value": "2"}]},
    ]}}}
    refused = refusal(jobs, "dup-template-env", {"env": [{"name": "LR", "value": "3"}], **template})
    assert refused.status == 422
    body = str(refused.body)
    assert "spec.podTemplate.spec.containers[0].env[0].name: LR is also set at spec.env[0].name" in body, body
    assert "spec.podTemplate.spec.containers[1].env[1].name: X is also set at" in body, body


TEMPLATE_CASES: list[tuple[str, dict[str, Any], str]] = [
    ("node-selector-string", {"podTemplate": {"spec": {"nodeSelector": "x"}}},
     "spec.podTemplate.spec.nodeSelector: must be a map"),
    ("selector-terms-map", {"podTemplate": {"spec": {"affinity": {"nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": {"matchExpressions": []}}}}}}},
     "nodeSelectorTerms: must be a list"),
    ("invalid-label", {"podTemplate": {"metadata": {"labels": {"team": "risk team"}}}},
     "spec.podTemplate.metadata.labels[team]: value 'risk team' is not a valid label value"),
    # Shape and syntax are right; the API server's own pod validation (dry-run) refuses it.
    ("sidecar-without-image", {"podTemplate": {"spec": {"containers": [{"name": "sync"}]}}},
     "spec.containers[1].image: Required value"),
    ("invalid-pull-policy",
     {"podTemplate": {"spec": {"containers": [{"name": "trainer", "imagePullPolicy": "Sometimes"}]}}},
     "imagePullPolicy: Unsupported value"),
]


@pytest.mark.parametrize(("case", "overrides", "named"), TEMPLATE_CASES, ids=[c[0] for c in TEMPLATE_CASES])
def test_a_template_that_is_no_valid_pod_template_is_refused_at_admission(
    jobs: Jobs, case: str, overrides: dict[str, Any], named: str
) -> None:
    refused = refusal(jobs, case, overrides)
    assert refused.status == 422
    assert named in str(refused.body), refused.body
    assert not jobs.pods(case, include_terminating=True)


def test_a_pod_the_api_server_refuses_at_create_fails_the_job_with_invalid_spec(
    api: kubernetes.client.ApiClient, jobs: Jobs
) -> None:
    # A cluster policy added after admission refuses the job's pods (not dry-runs) as invalid.
    admission = kubernetes.client.AdmissionregistrationV1Api(api)
    name = f"{jobs.ns}-no-pods"[:63]
    admission.create_validating_admission_policy({
        "metadata": {"name": name},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {"resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"],
                                                    "operations": ["CREATE"], "resources": ["pods"]}]},
            "matchConditions": [{"name": "not-dry-run", "expression": "!request.dryRun"}],
            "validations": [{"expression": "false", "reason": "Invalid",
                             "message": "pods here are refused by a test policy"}],
        },
    })
    admission.create_validating_admission_policy_binding({
        "metadata": {"name": name},
        "spec": {"policyName": name, "validationActions": ["Deny"], "matchResources": {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": jobs.ns}}}},
    })
    try:
        probe = {"metadata": {"name": "probe"}, "spec": {"containers": [{"name": "c", "image": "x"}]}}

        def policy_active() -> bool:
            try:
                jobs.core.create_namespaced_pod(jobs.ns, probe)
            except ApiException as exc:
                return exc.status == 422
            jobs.core.delete_namespaced_pod("probe", jobs.ns, grace_period_seconds=0)
            return False

        wait_for(policy_active, timeout=30, what="the test admission policy in force")
        cpu_job = JobBuilder.eu("refused-pods", jobs.ns).merge(
            nodePool="cpu", resources={"cpu": "100m", "memory": "64Mi", "gpus": 0}
        )
        jobs.custom.create_namespaced_custom_object(GROUP, VERSION, jobs.ns, PLURAL, cpu_job.manifest())

        jobs.wait_phase("refused-pods", "Failed", timeout=30)
        failed = jobs.condition("refused-pods", "Failed")
        assert failed is not None and failed["reason"] == "InvalidSpec"
        assert "the API server refuses the job's" in failed["message"]
        assert "pods here are refused by a test policy" in failed["message"]
        jobs.wait_events("refused-pods", "InvalidSpec", timeout=10)
        assert not jobs.pods("refused-pods", include_terminating=True)
    finally:
        admission.delete_validating_admission_policy_binding(name)
        admission.delete_validating_admission_policy(name)


def _filler(total: int, count: int = 50) -> list[dict[str, str]]:
    return [{"name": f"FILL_{i}", "value": "x" * (total // count)} for i in range(count)]


def test_an_oversize_job_is_refused_with_its_size_and_the_limit(jobs: Jobs) -> None:
    refused = refusal(jobs, "huge", {"env": _filler(1_400_000)})
    assert refused.status == 422, refused.body
    assert "TrainingJob" in str(refused.body) and "is too large: spec is" in str(refused.body), refused.body
    assert "at most 524288 are allowed" in str(refused.body)


def test_a_large_job_can_be_updated_and_with_the_operator_down_labelled_and_deleted(
    jobs: Jobs, operator: OperatorProcess
) -> None:
    # Each version ~700 KB (spec near its limit, a large annotation): an update's review is ~1.4 MB.
    manifest = JobBuilder.eu("large", jobs.ns).merge(env=_filler(500_000), **HOLD).manifest()
    manifest["metadata"]["annotations"] = {"notes": "n" * 200_000}
    jobs.custom.create_namespaced_custom_object(GROUP, VERSION, jobs.ns, PLURAL, manifest)
    jobs.patch_spec("large", {"runPolicy": {"suspend": True, "backoffLimit": 4}})  # judged by every webhook
    assert jobs.get("large")["spec"]["runPolicy"]["backoffLimit"] == 4

    operator.stop()
    try:
        # Metadata-only updates never reach the webhooks: labelling and a foreground delete (the
        # garbage collector removes its finalizer with an update) work while the operator is down.
        jobs.custom.patch_namespaced_custom_object(
            GROUP, VERSION, jobs.ns, PLURAL, "large", {"metadata": {"labels": {"reviewed": "yes"}}})
        with pytest.raises(ApiException) as spec_edit:
            jobs.patch_spec("large", {"runPolicy": {"suspend": True, "backoffLimit": 5}})
        assert spec_edit.value.status == 500 and "failed calling webhook" in str(spec_edit.value.body)
        jobs.custom.delete_namespaced_custom_object(
            GROUP, VERSION, jobs.ns, PLURAL, "large", body={"propagationPolicy": "Foreground"})
        wait_for(lambda: not jobs.exists("large"), timeout=30, what="the job deleted")
    finally:
        operator.start()
