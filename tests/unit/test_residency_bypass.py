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
from tests.residency_cases import CASES, CLAIM_CLASSES, POLICY_NAME, eu_policy, job_manifest, refused_field

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


@pytest.mark.parametrize(("case", "overrides"), CASES, ids=[c[0] for c in CASES])
def test_every_bypass_attempt_is_refused(case: str, overrides: dict[str, Any]) -> None:
    message = refusal(job_manifest("bypass", "team-eu", overrides))
    assert message is not None, "admitted"
    if message.startswith("model:"):
        assert "spec.dataset.uri" in message  # the CRD schema has the same pattern
        return
    assert f"DataResidencyPolicy {POLICY_NAME}" in message and "allowed:" in message, message
    assert refused_field(case) in message, message
