"""What reaches the webhooks: only the updates they judge (CEL matchConditions; the API server
evaluates them in tests/integration/test_spec_admission.py), bodies up to two maximal objects,
and specs no larger than what every pod can carry."""

from __future__ import annotations

from kubetrain.controller.webhook_scope import MAX_OBJECT_BYTES, MAX_REVIEW_BYTES, SPEC_CHANGED, scoped
from kubetrain.policy.admission import MAX_SPEC_BYTES, spec_refusal
from tests.residency_cases import job_manifest


def test_validating_handlers_that_judge_updates_get_match_conditions() -> None:
    hooks = scoped([{"name": f"{id_}.kubetrain-residency.kubetrain.io"} for id_ in
                    ("spec", "residency", "provenance", "budget", "submitted-by")])
    conditions = {h["name"].split(".")[0]: h.get("matchConditions") for h in hooks}
    assert conditions["spec"] == conditions["residency"] == conditions["budget"] == [SPEC_CHANGED]
    assert "kubetrain.io/submitted-by" in conditions["provenance"][0]["expression"]
    assert conditions["submitted-by"] is None  # CREATE only


def test_the_body_limit_holds_an_update_of_two_maximal_objects() -> None:
    assert MAX_REVIEW_BYTES > 2 * MAX_OBJECT_BYTES


def test_an_oversize_spec_is_refused_with_its_size_and_the_limit() -> None:
    big = job_manifest("big", "team", {"env": [{"name": f"V{i}", "value": "x" * 10_000} for i in range(60)]})
    refusal = spec_refusal(big)
    assert refusal is not None and "is too large: spec is" in refusal and f"at most {MAX_SPEC_BYTES}" in refusal
    assert spec_refusal(job_manifest("small", "team", {})) is None
