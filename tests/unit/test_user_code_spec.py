"""A job running its own code, purely: spec.dataset and spec.output optional with spec.command
(refused, naming both, for the built-in trainer), the data's licence and consent basis rendered
for the model card and recorded in provenance beside what the code reports it read, a
DataResidencyPolicy requiring them, and status.lastCheckpoint left to the trainer."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest
from pydantic import ValidationError

from kubetrain.api import TrainingJob, default_catalogue
from kubetrain.api.spec import DATA_REQUIRED_MESSAGE
from kubetrain.api.status import TrainingJobStatus
from kubetrain.plan.draft import Draft
from kubetrain.plan.patch import status_patch
from kubetrain.plan.provenance import provenance
from kubetrain.plan.report import parse_report
from kubetrain.policy.residency import ResidencyFacts, evaluate
from kubetrain.policy.residency.evaluate import claims_referenced
from kubetrain.render import RenderSettings, render_pytorch
from tests.builders import JobBuilder

COMMAND = {"command": ["torchrun"], "args": ["/workspace/train.py"]}
DATASET = {"uri": "s3://eu-data/datasets/churn.csv", "license": "CC-BY-4.0", "consentBasis": "contract"}
OUTPUT = {"uri": "s3://eu-models/churn"}
NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)


CHURN = JobBuilder.bare("churn", "team").uid("u-1")


def env(tj: TrainingJob) -> dict[str, str]:
    pod = render_pytorch(tj, default_catalogue(), RenderSettings(default_image="img")).pods[0]
    return {e["name"]: e["value"] for e in pod["spec"]["containers"][0]["env"]}


@pytest.mark.parametrize(
    "spec",
    [
        {"task": {"type": "tabular-classification"}},
        {"task": {"type": "tabular-classification"}, "dataset": DATASET},
        {"task": {"type": "tabular-classification"}, "output": OUTPUT},
        {"task": {"type": "tabular-classification"}, "command": [], "dataset": DATASET},
    ],
)
def test_the_built_in_trainer_needs_dataset_and_output(spec: dict[str, Any]) -> None:
    with pytest.raises(ValidationError) as refused:
        CHURN.spec(**spec).obj()
    assert DATA_REQUIRED_MESSAGE in str(refused.value)
    assert "spec.dataset and spec.output are required unless spec.command is set" in DATA_REQUIRED_MESSAGE


def test_own_code_needs_neither_and_gets_no_uri_variables() -> None:
    rendered = env(CHURN.spec(**COMMAND).obj())
    assert not {"KUBETRAIN_DATASET_URI", "KUBETRAIN_OUTPUT_URI", "KUBETRAIN_DATASET_LICENSE"} & set(rendered)
    assert rendered["PET_NNODES"] == "1" and rendered["PET_NPROC_PER_NODE"] == "1"
    assert claims_referenced(CHURN.spec(**COMMAND).obj()) == set()


def test_the_data_terms_reach_the_pods() -> None:
    rendered = env(CHURN.spec(**COMMAND, dataset=DATASET).obj())
    assert rendered["KUBETRAIN_DATASET_URI"] == DATASET["uri"]
    stated = (rendered["KUBETRAIN_DATASET_LICENSE"], rendered["KUBETRAIN_DATASET_CONSENT_BASIS"])
    assert stated == ("CC-BY-4.0", "contract")


def requiring(*fields: str, enforcement: str = "Enforce") -> ResidencyFacts:
    policy = {"metadata": {"name": "terms"},
              "spec": {"namespaces": ["team"], "enforcement": enforcement, "requiredDatasetFields": list(fields)}}
    return ResidencyFacts(namespace="team", policies=[policy])


@pytest.mark.parametrize(
    ("dataset", "missing"),
    [
        (DATASET, []),
        ({**DATASET, "license": None}, ["spec.dataset.license"]),
        ({"uri": DATASET["uri"]}, ["spec.dataset.license", "spec.dataset.consentBasis"]),
        (None, ["spec.dataset.license", "spec.dataset.consentBasis"]),
    ],
)
def test_a_policy_can_require_the_data_terms(dataset: dict[str, Any] | None, missing: list[str]) -> None:
    spec = {**COMMAND, **({"dataset": {k: v for k, v in dataset.items() if v}} if dataset else {})}
    verdict = evaluate(CHURN.spec(**spec).obj(), requiring("license", "consentBasis"), default_catalogue())
    assert [v.field for v in verdict.blocking] == missing
    for violation in verdict.blocking:
        message = violation.message()
        assert "DataResidencyPolicy terms spec.requiredDatasetFields" in message, message
        assert ("set spec.dataset " if dataset is None else f"set {violation.field}") in message, message


def test_an_audit_policy_only_records_missing_terms() -> None:
    verdict = evaluate(CHURN.spec(**COMMAND).obj(), requiring("license", enforcement="Audit"), default_catalogue())
    assert not verdict.blocking and [v.field for v in verdict.audited] == ["spec.dataset.license"]


def test_provenance_records_what_the_code_read_and_the_terms() -> None:
    tj = CHURN.spec(**COMMAND, dataset=DATASET).obj()
    report = parse_report(
        '{"outcome": "Succeeded", "metrics": {"accuracy": 0.9}, "provenance": {"datasetUri": "s3://eu-data/datasets/v2.csv",'
        ' "datasetDigest": "sha256:ab", "datasetProfile": {"rows": 10, "missingValues": 1, "classCounts": {"a": 10}}}}'
    )
    recorded = provenance(Draft.start(tj, NOW), report, "img", None)
    assert recorded.dataset_uri == "s3://eu-data/datasets/v2.csv"
    assert recorded.dataset_profile is not None and recorded.dataset_profile.missing_values == 1
    assert (recorded.dataset_license, recorded.dataset_consent_basis) == ("CC-BY-4.0", "contract")
    assert recorded.config == {"command": ["torchrun"], "args": ["/workspace/train.py"]}
    assert provenance(Draft.start(tj, NOW), None, "img", None).dataset_uri == DATASET["uri"]
    assert provenance(Draft.start(CHURN.spec(**COMMAND).obj(), NOW), None, "img", None).dataset_uri is None


def test_the_operator_never_writes_the_last_checkpoint() -> None:
    previous = {
        "phase": "Running", "restarts": 0, "lastCheckpoint": {"step": 5, "uri": "file:///c", "digest": "sha256:1"}
    }
    status = TrainingJobStatus.model_validate(previous)
    assert status_patch(previous, status) == {}
    assert status_patch(previous, status.model_copy(update={"last_checkpoint": None})) == {}
