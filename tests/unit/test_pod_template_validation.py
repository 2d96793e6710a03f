"""spec.podTemplate is a core/v1 PodTemplateSpec: its shape is checked against the Kubernetes
client's OpenAPI types and its labels against the API server's syntax, so a template that would
crash the reconcile or fail every pod create is refused up front, naming the field; an
error of the spec left inside a plan fails the job with InvalidSpec, any other is retried with the pods kept."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from kubetrain.api import TrainingJob, default_catalogue
from kubetrain.plan.decision import PlanInputs, plan_job
from kubetrain.policy.admission import spec_refusal
from kubetrain.policy.residency import ResidencyFacts
from kubetrain.render.errors import InvalidSpec
from kubetrain.render.settings import RenderSettings
from tests.builders import JobBuilder

NOW = dt.datetime(2026, 12, 2, 4, 0, tzinfo=dt.timezone.utc)
REQUIRED = "requiredDuringSchedulingIgnoredDuringExecution"


def _spec(pod_spec: dict[str, Any]) -> dict[str, Any]:
    return {"podTemplate": {"spec": pod_spec}}


INVALID: list[tuple[str, dict[str, Any], str]] = [
    ("node-selector-string", _spec({"nodeSelector": "x"}), "spec.podTemplate.spec.nodeSelector: must be a map"),
    ("selector-terms-map", _spec({"affinity": {"nodeAffinity": {REQUIRED: {"nodeSelectorTerms": {"a": 1}}}}}),
     f"spec.podTemplate.spec.affinity.nodeAffinity.{REQUIRED}.nodeSelectorTerms: must be a list"),
    ("containers-map", _spec({"containers": {"name": "trainer"}}), "spec.podTemplate.spec.containers: must be a list"),
    ("null-container", _spec({"containers": [None]}), "spec.podTemplate.spec.containers[0]: must not be null"),
    ("port-string", _spec({"containers": [{"name": "t", "ports": [{"containerPort": "http"}]}]}),
     "spec.podTemplate.spec.containers[0].ports[0].containerPort: must be an integer"),
    ("env-list-of-strings", _spec({"containers": [{"name": "t", "env": ["A=1"]}]}),
     "spec.podTemplate.spec.containers[0].env[0]: must be an object (EnvVar)"),
    ("misspelled-field", _spec({"nodeSelecter": {"a": "b"}}), "nodeSelecter: PodSpec has no such field; did you mean "
     "nodeSelector?"),
    ("label-value-space", {"podTemplate": {"metadata": {"labels": {"team": "risk team"}}}},
     "spec.podTemplate.metadata.labels[team]: value 'risk team' is not a valid label value"),
    ("label-key-two-slashes", {"podTemplate": {"metadata": {"labels": {"a/b/c": "x"}}}},
     "spec.podTemplate.metadata.labels[a/b/c]: key 'a/b/c' is not a valid key"),
    ("label-value-too-long", {"podTemplate": {"metadata": {"labels": {"team": "x" * 64}}}},
     "is not a valid label value"),
    ("annotation-key", {"podTemplate": {"metadata": {"annotations": {"-bad": "x"}}}},
     "spec.podTemplate.metadata.annotations[-bad]: key '-bad' is not a valid key"),
]


@pytest.mark.parametrize(("case", "overrides", "named"), INVALID, ids=[c[0] for c in INVALID])
def test_a_template_that_is_not_a_pod_template_is_refused_naming_the_field(
    case: str, overrides: dict[str, Any], named: str
) -> None:
    refusal = spec_refusal(JobBuilder.eu("bad", "team").merge(**overrides).manifest())
    assert refusal is not None and named in refusal, refusal


def test_a_valid_template_is_admitted_and_nulls_mean_unset() -> None:
    overrides = _spec({
        "nodeSelector": {"disk": "ssd"},
        "affinity": {"nodeAffinity": {REQUIRED: None}},
        "containers": [{"name": "trainer", "resources": {"limits": {"cpu": 4}}, "ports": [{"containerPort": 80}]}],
        "tolerations": [{"key": "a", "operator": "Exists"}],
    })
    metadata = {"labels": {"example.com/team": "risk_1.a"}, "annotations": {"note": "anything at all"}}
    manifest = JobBuilder.eu("ok", "team").merge(**{**overrides, "podTemplate": {
        **overrides["podTemplate"], "metadata": metadata}}).manifest()
    assert spec_refusal(manifest) is None
    assert TrainingJob.model_validate(manifest).spec.pod_template.spec["affinity"] == {"nodeAffinity": {}}


def test_the_model_refusal_fails_the_job_with_invalid_spec_before_any_pod() -> None:
    raw = JobBuilder.eu("bad", "team").merge(**_spec({"nodeSelector": "x"})).manifest()
    raw["metadata"].update(uid="u", generation=1, resourceVersion="1")
    inputs = PlanInputs(catalogue=default_catalogue(), render=RenderSettings(default_image="img"))
    decision = plan_job(raw, [], [], inputs, NOW, ResidencyFacts(namespace="team"))
    assert not decision.create
    failed = [c for c in decision.status_patch["conditions"] if c["type"] == "Failed"]
    assert failed[0]["reason"] == "InvalidSpec" and "spec.podTemplate.spec.nodeSelector" in failed[0]["message"]


def test_an_exception_that_is_not_the_spec_holds_the_job_and_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_: Any, **__: Any) -> Any:
        raise TypeError("'str' object is not a mapping")

    monkeypatch.setattr("kubetrain.plan.decision.plan", broken)
    raw = JobBuilder.eu("crash", "team").manifest()
    raw["metadata"].update(uid="u", generation=1, resourceVersion="1")
    pod = {"metadata": {"name": "crash-worker-0"}}
    inputs = PlanInputs(catalogue=default_catalogue(), render=RenderSettings(default_image="img"))
    decision = plan_job(raw, [pod], [], inputs, NOW, ResidencyFacts(namespace="team"))
    running = [c for c in decision.status_patch["conditions"] if c["type"] == "Running"]
    assert running[0]["reason"] == "PlanningError" and running[0]["status"] == "False"
    assert "TypeError: 'str' object is not a mapping" in running[0]["message"]
    assert not any(c["type"] == "Failed" for c in decision.status_patch["conditions"])
    assert decision.delete_pods == [] and decision.requeue_after == 30.0
    assert [e.reason for e in decision.events] == ["PlanningError"]


def test_a_render_refusal_while_planning_still_fails_the_job_with_invalid_spec(monkeypatch: pytest.MonkeyPatch) -> None:
    def refused(*_: Any, **__: Any) -> Any:
        raise InvalidSpec("spec.nodePool", "x", "a pool", "choose one")

    monkeypatch.setattr("kubetrain.plan.decision.plan", refused)
    raw = JobBuilder.eu("refused", "team").manifest()
    raw["metadata"].update(uid="u", generation=1, resourceVersion="1")
    inputs = PlanInputs(catalogue=default_catalogue(), render=RenderSettings(default_image="img"))
    decision = plan_job(raw, [{"metadata": {"name": "refused-worker-0"}}], [], inputs, NOW,
                        ResidencyFacts(namespace="team"))
    failed = [c for c in decision.status_patch["conditions"] if c["type"] == "Failed"]
    assert failed[0]["reason"] == "InvalidSpec" and "spec.nodePool" in failed[0]["message"]
    assert decision.delete_pods == ["refused-worker-0"]


def test_a_pod_whose_exit_code_is_null_is_planned_not_failed() -> None:
    raw = JobBuilder.eu("nullcode", "team").manifest()
    raw["metadata"].update(uid="u", generation=1, resourceVersion="1")
    pod = {
        "metadata": {"name": "nullcode-worker-0", "labels": {"kubetrain.io/role": "worker",
                                                             "kubetrain.io/replica-index": "0"}},
        "status": {"phase": "Failed", "containerStatuses": [
            {"name": "trainer", "state": {"terminated": {"exitCode": None, "reason": "Error"}}}]},
    }
    inputs = PlanInputs(catalogue=default_catalogue(), render=RenderSettings(default_image="img"))
    decision = plan_job(raw, [pod], [], inputs, NOW, ResidencyFacts(namespace="team"))
    reasons = {c["type"]: c["reason"] for c in decision.status_patch.get("conditions", [])}
    assert reasons.get("Failed") != "InvalidSpec" and "PlanningError" not in reasons.values(), reasons


def test_a_child_the_operator_cannot_read_holds_the_job_and_keeps_its_pods() -> None:
    """A model error while reading a pod is the pod's, not the spec's: no InvalidSpec, no delete."""
    raw = JobBuilder.eu("oddpod", "team").manifest()
    raw["metadata"].update(uid="u", generation=1, resourceVersion="1")
    pod = {"metadata": {"name": "oddpod-worker-0", "labels": {"kubetrain.io/role": ["not", "a", "string"]}}}
    inputs = PlanInputs(catalogue=default_catalogue(), render=RenderSettings(default_image="img"))
    decision = plan_job(raw, [pod], [], inputs, NOW, ResidencyFacts(namespace="team"))
    reasons = {c["type"]: c["reason"] for c in decision.status_patch["conditions"]}
    assert reasons == {"Running": "PlanningError"} and decision.delete_pods == []
