"""The bypass table against the pure admission decision: every trick is refused, by the models
(which say what the CRD schema says) or by the policy, and a refusal names the policy, the
offending field and the allowed values."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from kubetrain.api import TrainingJob, default_catalogue
from kubetrain.policy import ResidencyFacts
from kubetrain.policy.admission import admit
from tests.residency_cases import CASES, CLAIM_CLASSES, POLICY_NAME, eu_policy, job_manifest

CATALOGUE = default_catalogue()
FACTS = ResidencyFacts(namespace="team-eu", policies=[eu_policy(POLICY_NAME, ["team-eu"])],
                       storage_classes=CLAIM_CLASSES)


def refusal(manifest: dict[str, Any]) -> str | None:
    try:
        job = TrainingJob.model_validate(manifest)
    except ValidationError as exc:
        return f"model: {exc}"
    return admit(job, FACTS, CATALOGUE).refusal


def test_the_table_is_large_enough() -> None:
    assert len(CASES) >= 30


def test_the_base_job_and_allowed_variants_are_admitted() -> None:
    assert refusal(job_manifest("ok", "team-eu", {})) is None
    assert refusal(job_manifest("ok", "team-eu", {"dataset": {"uri": "pvc://eu-claim/datasets/x.csv"}})) is None
    assert refusal(job_manifest("ok", "team-eu", {"dataset": {"uri": "s3://EU-DATA/datasets/sub/x.csv"}})) is None
    assert refusal(job_manifest("ok", "team-eu", {"dataset": {"uri": "s3://eu-data/datasets%2Fx.csv"}})) is None
    # Another spelling of an allowed store is the same allowed store.
    assert refusal(job_manifest("ok", "team-eu", {"env": [{"name": "MORE", "value": "s3a://eu-data/datasets/y"}]})) is None
    assert refusal(job_manifest("ok", "team-eu", {"args": ["--note", "tcp://10.0.0.1:80 is a service link"],
                                                  "command": ["python"]})) is None


def _field(case: str) -> str:
    """The job field each refusal must name, so a case refused for an unrelated reason fails."""
    fields = {
        "output-in-us": "spec.output.uri",
        "checkpoint-from-us": "spec.task.finetune.checkpointUri",
        "us-pool": "spec.nodePool",
        "pool-alias-by-case": "spec.nodePool",
        "no-pool-with-pool-allow-list": "spec.nodePool",
        "pool-alias-in-node-selector": "spec.podTemplate.spec.nodeSelector[kubetrain.io/node-pool]",
        "region-in-node-selector": "spec.podTemplate.spec.nodeSelector[topology.kubernetes.io/region]",
        "node-name": "spec.podTemplate.spec.nodeName",
        "scheduler-name": "spec.podTemplate.spec.schedulerName",
        "env-value-us-uri": "spec.env[0]",
        "args-us-uri": "spec.args[1]",
        "template-env-from": "envFrom",
        "template-nfs-volume": "volumes[0].nfs",
        "template-pvc-volume": "volumes[0].persistentVolumeClaim",
    }
    if case in fields:
        return fields[case]
    if case.startswith("scheme-env-"):
        return "spec.env[0]"
    if case.startswith("scheme-args-"):
        return "spec.args[1]"
    if case.startswith("affinity-"):
        return "spec.podTemplate.spec.affinity"
    if case.startswith("env-"):
        return "spec.env[0].name"
    if case.startswith("template-"):
        return "spec.podTemplate.spec.containers[0].env[0].name"
    return "spec.dataset.uri"


@pytest.mark.parametrize(("case", "overrides"), CASES, ids=[c[0] for c in CASES])
def test_every_bypass_attempt_is_refused(case: str, overrides: dict[str, Any]) -> None:
    message = refusal(job_manifest("bypass", "team-eu", overrides))
    assert message is not None, "admitted"
    if message.startswith("model:"):
        assert "spec.dataset.uri" in message  # the CRD schema has the same pattern
        return
    assert f"DataResidencyPolicy {POLICY_NAME}" in message and "allowed:" in message, message
    assert f"{_field(case)}" in message, message
