"""The pure decisions behind promotion and provenance: gates (thresholds, regression against the
promoted version), which version a Model promotes (latest, pin, a pin naming nothing), the
label that makes a data set queryable, and the image digest read from a kubelet's imageID."""

from __future__ import annotations

import datetime as dt

import pytest

from kubetrain.api.evaluation import Gate
from kubetrain.api.registry import Model, ModelVersion, digest_label
from kubetrain.plan.model import resolve
from kubetrain.plan.provenance import image_digest
from kubetrain.policy.promotion import Promoted, judge_gates

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
HEX = "0123456789abcdef" * 4


def gate(**fields: object) -> Gate:
    return Gate.model_validate(fields)


def test_thresholds_pass_and_fail_with_the_numbers() -> None:
    verdict = judge_gates([gate(metric="f1", op=">=", value=0.9), gate(metric="loss", op="<=", value=0.3)],
                    {"f1": 0.95, "loss": 0.4}, None)
    assert verdict.passed == ["f1 0.95 >= 0.9"]
    assert verdict.failed == ["loss 0.4 <= 0.3"] and not verdict.ok


def test_an_unreported_metric_fails_its_gate() -> None:
    verdict = judge_gates([gate(metric="f1", op=">=", value=0.9)], {"accuracy": 0.99}, None)
    assert verdict.failed == ["f1: not reported by the run (reported: accuracy)"]


@pytest.mark.parametrize(
    ("metric", "value", "ok"),
    [("f1", 0.89, True), ("f1", 0.87, False), ("loss", 0.21, True), ("loss", 0.23, False)],
)
def test_regression_is_bounded_in_the_metric_s_better_direction(metric: str, value: float, ok: bool) -> None:
    promoted = Promoted(name="fraud-v1", metrics={"f1": 0.9, "loss": 0.2})
    verdict = judge_gates([gate(metric=metric, maxRegression=0.02)], {metric: value}, promoted)
    assert verdict.ok is ok, verdict
    assert "promoted fraud-v1" in (verdict.passed + verdict.failed)[0]


def test_regression_bound_does_not_apply_without_a_promoted_version() -> None:
    verdict = judge_gates([gate(metric="f1", maxRegression=0.01)], {"f1": 0.1}, None)
    assert verdict.ok and "not applicable (no version is promoted)" in verdict.passed[0]


def model(pin: str | None = None, promoted: str | None = None) -> Model:
    return Model.model_validate({
        "metadata": {"name": "fraud", "namespace": "risk", "generation": 2},
        "spec": {"promotedVersion": pin} if pin else {},
        "status": {"promotedVersion": promoted} if promoted else {},
    })


def version(number: int, f1: float) -> ModelVersion:
    return ModelVersion.model_validate({
        "metadata": {"name": f"fraud-v{number}"},
        "spec": {
            "model": "fraud", "version": number, "sourceJob": {"name": f"job-{number}", "uid": f"u{number}"},
            "metrics": {"f1": f1}, "provenance": {"datasetUri": "s3://d", "trainerImage": "img"},
        },
    })


VERSIONS = [version(2, 0.93), version(1, 0.91)]


def test_the_latest_version_is_promoted_without_a_pin() -> None:
    plan = resolve(model(), VERSIONS, NOW)
    assert (plan.status.promoted_version, plan.status.latest_version, plan.status.versions) == ("fraud-v2",
                                                                                                "fraud-v2", 2)
    assert plan.status.promoted_metrics == {"f1": 0.93}
    assert [e.reason for e in plan.events] == ["Promoted"]


def test_a_pin_rolls_back_and_a_pin_naming_nothing_keeps_what_was_promoted() -> None:
    rolled = resolve(model(pin="fraud-v1", promoted="fraud-v2"), VERSIONS, NOW)
    assert rolled.status.promoted_version == "fraud-v1" and rolled.status.latest_version == "fraud-v2"
    typo = resolve(model(pin="fraud-v9", promoted="fraud-v2"), VERSIONS, NOW)
    assert typo.status.promoted_version == "fraud-v2"
    assert [(c.type, c.status, c.reason) for c in typo.status.conditions] == [("Resolved", "False", "PinNotFound")]
    assert [e.reason for e in typo.events] == ["PinNotFound"]


def test_digest_label_is_the_first_32_hex_digits() -> None:
    assert digest_label(f"sha256:{HEX}") == digest_label(HEX) == HEX[:32]


@pytest.mark.parametrize(
    ("image_id", "digest"),
    [
        (f"ghcr.io/kubetrain/trainer@sha256:{HEX}", f"sha256:{HEX}"),
        (f"docker-pullable://ghcr.io/kubetrain/trainer@sha256:{HEX}", f"sha256:{HEX}"),
        (f"sha256:{HEX}", f"sha256:{HEX}"),
        ("", None),
        (None, None),
        ("ghcr.io/kubetrain/trainer:0.1.0", None),
    ],
)
def test_image_digest_from_any_runtime_s_image_id(image_id: str | None, digest: str | None) -> None:
    assert image_digest(image_id) == digest
