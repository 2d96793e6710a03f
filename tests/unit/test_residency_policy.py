"""Residency evaluation, purely: URI normalisation, rule matching, namespace selection, the
intersection of several policies, the operator default, and the admission decision."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from kubetrain.api import default_catalogue
from kubetrain.api.residency import DataResidencyPolicy, LabelSelector, LocationRule
from kubetrain.policy.admission import admit, spec_unchanged
from kubetrain.policy.residency import DefaultResidency, ResidencyFacts, evaluate
from kubetrain.policy.residency.evaluate import claims_referenced
from kubetrain.policy.residency.match import rule_allows, selector_matches
from kubetrain.policy.residency.uri import UriError, normalise
from tests.builders import JobBuilder
from tests.residency_cases import eu_policy

CATALOGUE = default_catalogue()


EU_JOB = JobBuilder.eu("j", "team")


def facts(*policies: dict[str, Any], labels: dict[str, str] | None = None, **extra: Any) -> ResidencyFacts:
    return ResidencyFacts(namespace="team", namespace_labels=labels or {}, policies=list(policies), **extra)


def policy(name: str, **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": {"namespaces": ["team"], **spec}}


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("s3://eu-data/a/b/", "s3://eu-data/a/b"),
        ("S3://EU-Data/A/b", "s3://eu-data/A/b"),
        ("gs://b/x%20y", None),
        ("s3://b/a%2Fb", "s3://b/a/b"),
        ("file:///var/data", "file:///var/data"),
        ("file://localhost/var/data", "file://localhost/var/data"),
        ("pvc://claim", "pvc://claim/"),
    ],
)
def test_normalise_canonical_forms(raw: str, canonical: str | None) -> None:
    if canonical is None:
        with pytest.raises(UriError):
            normalise(raw)
    else:
        assert str(normalise(raw)) == canonical


@pytest.mark.parametrize(
    "raw",
    ["s3://", "s3:///key", "http://eu-data/x", "file://host/x", "s3://b/%ff", "s3://b/a\x00", "s3://b/a b", "s3:/b/x"],
)
def test_normalise_refuses_ambiguous_or_foreign_uris(raw: str) -> None:
    with pytest.raises(UriError):
        normalise(raw)


def test_prefix_matches_whole_segments_and_globs() -> None:
    rule = LocationRule(scheme="s3", bucket="eu-*", prefix="data/run-*")
    assert rule_allows(rule, normalise("s3://eu-a/data/run-1/x"), None)
    assert rule_allows(rule, normalise("s3://eu-a/data/run-1"), None)
    assert not rule_allows(rule, normalise("s3://eu-a/data"), None)
    assert not rule_allows(rule, normalise("s3://eu-a/data2/run-1"), None)
    assert not rule_allows(rule, normalise("s3://us-a/data/run-1"), None)
    assert not rule_allows(rule, normalise("gs://eu-a/data/run-1"), None)


def test_pvc_rule_needs_the_claims_storage_class() -> None:
    rule = LocationRule(scheme="pvc", storage_classes=["eu-ssd"])
    uri = normalise("pvc://data/x")
    assert rule_allows(rule, uri, "eu-ssd")
    assert not rule_allows(rule, uri, "us-ssd")
    assert not rule_allows(rule, uri, None)
    assert rule_allows(LocationRule(scheme="pvc", bucket="data"), uri, None)


def test_location_rules_refuse_fields_their_scheme_lacks() -> None:
    with pytest.raises(ValidationError, match="file:// URIs have no bucket"):
        LocationRule(scheme="file", bucket="x")
    with pytest.raises(ValidationError, match="only pvc rules have a storage class"):
        LocationRule(scheme="s3", storage_classes=["x"])
    with pytest.raises(ValidationError, match="selects no namespace"):
        DataResidencyPolicy.model_validate({"metadata": {"name": "p"}, "spec": {"allowedRegions": ["eu"]}})


def test_selector_semantics_follow_kubernetes() -> None:
    labels = {"residency": "eu", "tier": "prod"}
    assert selector_matches(LabelSelector(), labels)
    assert selector_matches(LabelSelector.model_validate({"matchLabels": {"residency": "eu"}}), labels)
    assert not selector_matches(LabelSelector.model_validate({"matchLabels": {"residency": "us"}}), labels)
    expressions = [
        ({"key": "tier", "operator": "In", "values": ["prod", "dev"]}, True),
        ({"key": "tier", "operator": "NotIn", "values": ["prod"]}, False),
        ({"key": "missing", "operator": "NotIn", "values": ["x"]}, True),
        ({"key": "residency", "operator": "Exists"}, True),
        ({"key": "residency", "operator": "DoesNotExist"}, False),
    ]
    for expression, expected in expressions:
        assert selector_matches(LabelSelector.model_validate({"matchExpressions": [expression]}), labels) is expected


def test_policy_selects_by_name_or_by_label_only_its_namespaces() -> None:
    by_label = {"metadata": {"name": "eu"}, "spec": {"namespaceSelector": {"matchLabels": {"residency": "eu"}},
                                                    "allowedNodePools": ["a100-eu"]}}
    assert evaluate(EU_JOB.obj(), facts(by_label, labels={"residency": "eu"}), CATALOGUE).policies == ["eu"]
    assert evaluate(EU_JOB.obj(), facts(by_label, labels={"residency": "us"}), CATALOGUE).policies == []
    other = {"metadata": {"name": "other"}, "spec": {"namespaces": ["elsewhere"], "allowedNodePools": []}}
    assert evaluate(EU_JOB.obj(), facts(other), CATALOGUE).violations == []


def test_no_policy_follows_the_operator_default() -> None:
    assert evaluate(EU_JOB.obj(), facts(), CATALOGUE).violations == []
    denied = evaluate(EU_JOB.obj(), facts(default=DefaultResidency.DENY_ALL), CATALOGUE)
    [violation] = denied.blocking
    assert violation.rule == "--default-residency=deny-all" and violation.value == "team"
    assert "no DataResidencyPolicy selects this namespace" in violation.message()
    allowed = evaluate(EU_JOB.obj(), facts(eu_policy("eu", ["team"]), default=DefaultResidency.DENY_ALL), CATALOGUE)
    assert allowed.violations == [] and allowed.policies == ["eu"]


def test_several_policies_combine_to_their_intersection() -> None:
    wide = policy("wide", allowedRegions=["eu-west-1", "us-east-1"], allowedNodePools=["a100-eu", "h100-us", "cpu"])
    narrow = policy("narrow", allowedRegions=["eu-west-1"], allowedNodePools=["cpu", "a100-eu"])
    verdict = evaluate(EU_JOB.obj(), facts(wide, narrow), CATALOGUE)
    assert verdict.violations == [] and verdict.regions == ["eu-west-1"]
    refused = evaluate(EU_JOB.merge(nodePool="h100-us").obj(), facts(wide, narrow), CATALOGUE)
    assert {v.policy for v in refused.blocking} == {"narrow"}
    disjoint = evaluate(EU_JOB.merge(**{"nodePool": "cpu", "resources": {"gpus": 0}}).obj(),
                        facts(policy("eu", allowedRegions=["eu-west-1"]), policy("us", allowedRegions=["us-east-1"])),
                        CATALOGUE)
    assert disjoint.regions == [] and "no region in common" in disjoint.summary()


def test_audit_policies_record_but_neither_block_nor_pin_regions() -> None:
    audit = policy("audit", enforcement="Audit", allowedRegions=["us-east-1"])
    verdict = evaluate(EU_JOB.obj(), facts(audit), CATALOGUE)
    assert verdict.blocking == [] and [v.policy for v in verdict.audited] == ["audit"]
    assert verdict.regions is None
    decision = admit(EU_JOB.obj(), facts(audit), CATALOGUE)
    assert decision.refusal is None and decision.warnings[0].startswith("data residency (Audit): spec.nodePool")


def test_an_unreadable_policy_fails_closed() -> None:
    broken = {"metadata": {"name": "broken"}, "spec": {"namespaces": ["team"], "allowedRegions": "eu"}}
    [violation] = evaluate(EU_JOB.obj(), facts(broken), CATALOGUE).blocking
    assert violation.policy == "broken" and "cannot be read" in violation.reason


def test_the_claims_to_look_up_come_from_uris_and_volumes() -> None:
    spec = {"dataset": {"uri": "pvc://train/x"}, "output": {"uri": "pvc://Out/y"},
            "podTemplate": {"spec": {"volumes": [{"name": "v", "persistentVolumeClaim": {"claimName": "extra"}}]}},
            "env": [{"name": "MORE", "value": "pvc://env-claim/z"}]}
    assert claims_referenced(EU_JOB.merge(**spec).obj()) == {"train", "out", "extra", "env-claim"}


def test_admission_skips_updates_that_leave_the_spec_alone() -> None:
    new = JobBuilder.eu("j", "team").manifest()
    assert spec_unchanged(new, JobBuilder.eu("j", "team").manifest())
    assert not spec_unchanged(new, JobBuilder.eu("j", "team").merge(workers=2).manifest())
    assert not spec_unchanged(new, None)
