"""The bypass table against the pure admission decision: every trick is refused, by the models
(which say what the CRD schema says) or by the policy, and a refusal names the policy, the
offending field and the allowed values."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from kubetrain.api import TrainingJob, default_catalogue
from kubetrain.policy.admission import admit
from kubetrain.policy.residency import ResidencyFacts
from tests.builders import JobBuilder
from tests.residency_cases import CASES, CLAIM_CLASSES, POLICY_NAME, eu_policy, refused_field

CATALOGUE = default_catalogue()
OK = JobBuilder.eu("ok", "team-eu")
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
    assert refusal(OK.manifest()) is None
    assert refusal(OK.merge(dataset={"uri": "pvc://eu-claim/datasets/x.csv"}).manifest()) is None
    assert refusal(OK.merge(dataset={"uri": "s3://EU-DATA/datasets/sub/x.csv"}).manifest()) is None
    assert refusal(OK.merge(dataset={"uri": "s3://eu-data/datasets%2Fx.csv"}).manifest()) is None
    # Another spelling of an allowed store is the same allowed store.
    assert refusal(OK.merge(env=[{"name": "MORE", "value": "s3a://eu-data/datasets/y"}]).manifest()) is None
    note = OK.merge(args=["--note", "tcp://10.0.0.1:80 is a service link"], command=["python"])
    assert refusal(note.manifest()) is None


@pytest.mark.parametrize(("case", "overrides"), CASES, ids=[c[0] for c in CASES])
def test_every_bypass_attempt_is_refused(case: str, overrides: dict[str, Any]) -> None:
    message = refusal(JobBuilder.eu("bypass", "team-eu").merge(**overrides).manifest())
    assert message is not None, "admitted"
    if message.startswith("model:"):
        assert "spec.dataset.uri" in message  # the CRD schema has the same pattern
        return
    assert f"DataResidencyPolicy {POLICY_NAME}" in message and "allowed:" in message, message
    assert refused_field(case) in message, message


ALLOWED_VARIANTS: list[tuple[str, dict[str, Any]]] = [
    ("secret-credentials", {"podTemplate": {"spec": {"containers": [{"name": "trainer", "env": [
        {"name": "AWS_SECRET_ACCESS_KEY", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "secret"}}}]}]}}}),
    ("rank-in-args", {"command": ["python", "train.py"], "args": ["--rank=$(RANK)", "--world=$(WORLD_SIZE)"]}),
    ("pod-ip-field-ref", {"command": ["python"], "args": ["--host=$(IP)"], "podTemplate": {"spec": {"containers": [
        {"name": "trainer", "env": [{"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}]}]}}}),
    ("escaped-reference", {"command": ["python"], "args": ["$$(P)//us-bucket/x"],
                           "env": [{"name": "P", "value": "s3:"}]}),
    ("expanded-to-allowed-data", {"command": ["python"], "args": ["$(D)/x.csv"],
                                  "env": [{"name": "D", "value": "s3a://eu-data/datasets"}]}),
    ("ray-spilling-in-eu", {"runtime": "ray", "ray": {"rayStartParams": {
        "object-spilling-config": '{"type":"smart_open","params":{"uri":"s3://eu-data/datasets/spill"}}'}}}),
    ("config-mount-elsewhere", {"podTemplate": {"spec": {"volumes": [{"name": "c", "configMap": {"name": "x"}}],
                                                         "containers": [{"name": "trainer", "volumeMounts": [
                                                             {"name": "c", "mountPath": "/etc/trainer"}]}]}}}),
    ("escaped-spilling-in-eu", {"runtime": "ray", "ray": {"rayStartParams": {
        "object-spilling-config": '{"type":"smart_open","params":{"uri":"s3:\\/\\/eu-data\\/datasets\\/spill"}}'}}}),
    ("probes-and-hooks-on-the-pod", {"podTemplate": {"spec": {"containers": [{
        "name": "trainer", "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080}},
        "livenessProbe": {"exec": {"command": ["cat", "/tmp/alive"]}},
        "lifecycle": {"preStop": {"exec": {"command": ["sh", "-c", "cp -r /out s3://eu-models/run-1/final"]}}}}]}}}),
    ("mount-under-home", {"podTemplate": {"spec": {"volumes": [{"name": "c", "emptyDir": {}}], "containers": [
        {"name": "trainer", "volumeMounts": [{"name": "c", "mountPath": "/home/trainer/data"}]}]}}}),
    ("dns-policy-cluster-first", {"podTemplate": {"spec": {"dnsPolicy": "ClusterFirst"}}}),
    ("ipv6-and-scopes-are-not-schemes", {"command": ["python"], "args": ["--bind=[fe80::1]:80", "std::vector"]}),
]


@pytest.mark.parametrize(("case", "overrides"), ALLOWED_VARIANTS, ids=[c[0] for c in ALLOWED_VARIANTS])
def test_what_the_operator_can_judge_and_allow_is_admitted(case: str, overrides: dict[str, Any]) -> None:
    assert refusal(OK.merge(**overrides).manifest()) is None


def test_a_policy_may_allow_config_map_values() -> None:
    policy = eu_policy(POLICY_NAME, ["team-eu"])
    policy["spec"]["allowedValueSources"] = ["secretKeyRef", "configMapKeyRef"]
    facts = FACTS.model_copy(update={"policies": [policy]})
    [(_, overrides)] = [c for c in CASES if c[0] == "value-from-config-map"]
    job = OK.merge(**overrides).obj()
    assert admit(job, facts, CATALOGUE).refusal is None


@pytest.mark.parametrize("case", ["template-env-from", "template-env-from-secret", "value-from-config-map",
                                  "value-from-file-key", "expand-hidden-secret-piece"])
def test_refusals_of_unreadable_values_recommend_only_literal_values(case: str) -> None:
    [(_, overrides)] = [c for c in CASES if c[0] == case]
    message = refusal(JobBuilder.eu("bypass", "team-eu").merge(**overrides).manifest())
    assert message is not None and "literal" in message
    for unverifiable in ("use valueFrom", "with env[].valueFrom", "use envFrom", "configMapKeyRef instead"):
        assert unverifiable not in message


def test_a_sub_path_of_a_volume_named_like_a_config_directory_is_not_a_config_mount() -> None:
    overrides = {"podTemplate": {"spec": {"volumes": [{"name": "c", "configMap": {"name": "x"}}], "containers": [
        {"name": "trainer", "volumeMounts": [{"name": "c", "mountPath": "/etc/trainer", "subPath": ".config"}]}]}}}
    assert refusal(OK.merge(**overrides).manifest()) is None


def test_a_dataset_uri_the_kubelet_would_expand_is_judged_after_expansion() -> None:
    # KUBETRAIN_TASK precedes KUBETRAIN_DATASET_URI in the env, so the kubelet expands it there.
    # The task's JSON holds the checkpoint URI: its `//` makes an empty segment in the dataset URI.
    task = {"type": "tabular-classification", "finetune": {"checkpointUri": "s3://eu-data/datasets/ckpt"}}
    overrides = {"dataset": {"uri": "s3://eu-data/datasets/$(KUBETRAIN_TASK)"}, "task": task}
    message = refusal(JobBuilder.eu("expanded", "team-eu").merge(**overrides).manifest())
    assert (
        message is not None
        and "(KUBETRAIN_DATASET_URI)" in message
        and "after the kubelet's $(VAR) expansion" in message
    )
    assert "empty path segment" in message
    allowed = {"dataset": {"uri": "s3://eu-data/datasets/$(KUBETRAIN_JOB_NAME)/x.csv"}}
    assert refusal(JobBuilder.eu("expanded", "team-eu").merge(**allowed).manifest()) is None
