"""Specs refused before they exist, through the real kube-apiserver: the CRD's CEL rules and the
operator's `spec` validating webhook (rules the free-form pod template cannot state in a schema)."""

from __future__ import annotations

from typing import Any

import kubernetes
import pytest
from kubernetes.client.exceptions import ApiException

from tests.jobs import GROUP, PLURAL, VERSION, Jobs
from tests.operator_process import OperatorProcess
from tests.residency_cases import job_manifest

pytestmark = pytest.mark.cluster

HOLD = {"runPolicy": {"suspend": True}}


@pytest.fixture
def jobs(api: kubernetes.client.ApiClient, namespace: str, operator: OperatorProcess) -> Jobs:
    return Jobs(api, namespace)


def refusal(jobs: Jobs, name: str, overrides: dict[str, Any]) -> ApiException:
    with pytest.raises(ApiException) as refused:
        jobs.custom.create_namespaced_custom_object(
            GROUP, VERSION, jobs.ns, PLURAL, job_manifest(name, jobs.ns, {**overrides, **HOLD})
        )
    return refused.value


def test_duplicate_spec_env_is_refused_by_the_crd_naming_the_variable(jobs: Jobs) -> None:
    refused = refusal(jobs, "dup-env", {"env": [{"name": "LR", "value": "1"}, {"name": "LR", "value": "2"}]})
    assert refused.status == 422
    assert "spec.env: LR is set more than once" in str(refused.body), refused.body


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
