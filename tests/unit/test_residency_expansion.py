"""The kubelet's $(VAR) expansion as policy.expansion reproduces it (k8s.io/kubernetes
third_party/forked/golang/expansion): the residency verdict judges what containers receive."""

from __future__ import annotations

import pytest

from kubetrain.policy.residency.expansion import ContainerEnv, Value, expand, value_from


def env(**values: str) -> ContainerEnv:
    container = ContainerEnv()
    container.values = {k: Value(text=v) for k, v in values.items()}
    return container


@pytest.mark.parametrize(("text", "expanded"), [
    ("$(P)$(R)", "s3://us/x"),
    ("--data=$(P)$(R)/y", "--data=s3://us/x/y"),
    ("$$(P)", "$(P)"),                 # $$ is a literal $
    ("$$$(P)", "$s3:"),
    ("$(UNDEFINED)/x", "$(UNDEFINED)/x"),  # undefined names stay as written
    ("$(P", "$(P"),                    # unterminated
    ("cost: 5$", "cost: 5$"),
    ("$x$(P)", "$xs3:"),
    ("$(A B)", "$(A B)"),
])
def test_expansion_follows_the_kubelet(text: str, expanded: str) -> None:
    assert expand(text, env(P="s3:", R="//us/x")) == Value(text=expanded)


def test_a_reference_to_an_unreadable_value_makes_the_result_unjudgeable() -> None:
    container = env(P="s3:")
    container.values["SECRET"] = Value(hidden="comes from secretKeyRef, which the operator cannot read")
    assert (
        expand("$(P)$(SECRET)", container).hidden == "$(SECRET) comes from secretKeyRef, which the operator cannot read"
    )
    imported = env()
    imported.imports.append("{'configMapRef': {'name': 'x'}}")
    assert "may come from envFrom" in (expand("$(ANY)", imported).hidden or "")


def test_field_refs_are_resolved_from_the_rendered_pod() -> None:
    pod = {"metadata": {"name": "j-worker-0", "namespace": "ns", "annotations": {"d": "s3://us/x"}, "labels": {}}}
    assert value_from(pod, {"fieldRef": {"fieldPath": "metadata.annotations['d']"}}) == Value(text="s3://us/x")
    assert value_from(pod, {"fieldRef": {"fieldPath": "metadata.name"}}) == Value(text="j-worker-0")
    assert value_from(pod, {"fieldRef": {"fieldPath": "status.podIP"}}).hidden is None
    assert value_from(pod, {"configMapKeyRef": {"name": "c", "key": "k"}}).hidden is not None
