"""Users' own training code on the executing local node, run by torchrun from the rendered PET_*
variables: a script written for plain torchrun (pytorch/examples' DDP tutorial, on CPUs) that
knows nothing of kubetrain succeeds with no spec.dataset or spec.output, and a script reporting
through the SDK gets what the built-in trainer gets: progress, live metrics and its last
checkpoint in status, final metrics judged by the gates, a promoted ModelVersion, and provenance
with the data set's digest (computed here independently), profile, licence and consent basis."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import yaml

from kubetrain.api.history import parse_history
from kubetrain.devcluster.cluster import LocalCluster
from tests.builders import example
from tests.helpers import file_digest
from tests.jobs import GROUP, VERSION, Jobs
from tests.local_training import wait_succeeded_while_alive
from tests.operator_process import OperatorProcess
from tests.registry import Registry

pytestmark = [pytest.mark.cluster, pytest.mark.training]

USER_CODE = Path(__file__).resolve().parents[2] / "examples" / "user-code"


def test_the_api_server_refuses_a_built_in_trainer_job_without_data_and_admits_own_code(
    cluster: LocalCluster, namespace: str, operator: OperatorProcess,
) -> None:
    manifest = example("user-script-ddp-tutorial.yaml")
    built_in = copy.deepcopy(manifest)
    for key in ("command", "args"):
        built_in["spec"].pop(key)
    built_in["spec"]["task"] = {"type": "tabular-classification"}
    refused = cluster.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(built_in), check=False)
    assert refused.returncode != 0
    assert "spec.dataset and spec.output are required unless spec.command is set" in refused.stderr, refused.stderr
    manifest["spec"]["runPolicy"]["suspend"] = True  # admitted, never run
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(manifest))


def test_a_policy_requiring_the_data_terms_refuses_a_job_without_them(
    cluster: LocalCluster, api: kubernetes.client.ApiClient, namespace: str, operator: OperatorProcess,
) -> None:
    custom = kubernetes.client.CustomObjectsApi(api)
    name = f"{namespace}-terms"
    custom.create_cluster_custom_object(GROUP, VERSION, "dataresidencypolicies", {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "DataResidencyPolicy", "metadata": {"name": name},
        "spec": {"namespaces": [namespace], "requiredDatasetFields": ["license", "consentBasis"]},
    })
    try:
        manifest = example("user-script-torchrun.yaml")
        manifest["spec"]["runPolicy"]["suspend"] = True
        del manifest["spec"]["dataset"]["license"]
        refused = cluster.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(manifest), check=False)
        assert refused.returncode != 0
        assert (f"spec.dataset.license: '(unset)' breaks DataResidencyPolicy {name} spec.requiredDatasetFields "
                "(the policy requires it; set spec.dataset.license)") in refused.stderr, refused.stderr
        assert "consentBasis" not in refused.stderr
        manifest["spec"]["dataset"]["license"] = "CC-BY-4.0"
        cluster.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(manifest))
    finally:
        custom.delete_cluster_custom_object(GROUP, VERSION, "dataresidencypolicies", name)



def run_to_success(
    manifest: dict[str, Any], cluster: LocalCluster, api: kubernetes.client.ApiClient, namespace: str,
    operator: OperatorProcess,
) -> tuple[Jobs, dict[str, Any]]:
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(manifest))
    jobs, name = Jobs(api, namespace), manifest["metadata"]["name"]
    try:
        status = wait_succeeded_while_alive(jobs, name, cluster.state_dir / "localnode" / "pods")
    except AssertionError as exc:
        pytest.fail(f"job did not succeed: {exc}; operator log:\n{operator.log_tail()}\nstatus: {jobs.status(name)}")
    return jobs, status


def test_plain_torchrun_script_succeeds_without_dataset_or_output(
    cluster: LocalCluster, api: kubernetes.client.ApiClient, namespace: str, operator: OperatorProcess,
) -> None:
    manifest = example("user-script-ddp-tutorial.yaml")
    assert "dataset" not in manifest["spec"] and "output" not in manifest["spec"]
    manifest["spec"]["args"][0] = str(USER_CODE / "ddp_tutorial.py")
    jobs, status = run_to_success(manifest, cluster, api, namespace, operator)

    assert status["restarts"] == 0 and "metrics" not in status
    assert status["provenance"]["config"]["command"] == ["torchrun"]
    assert "datasetUri" not in status["provenance"]
    # Both pods' torchrun joined one group of two: each wrote its epochs' lines as global rank 0 or 1.
    logs = {
        pod.metadata.name: (
            cluster.state_dir / "localnode" / "pods" / f"{namespace}_{pod.metadata.name}_{pod.metadata.uid}"
            / "output.log"
        ).read_text()
        for pod in jobs.pods("ddp-tutorial")
    }
    assert "[GPU0] Epoch 3" in logs["ddp-tutorial-worker-0"], logs
    assert "[GPU1] Epoch 3" in logs["ddp-tutorial-worker-1"], logs


def test_sdk_script_reports_status_provenance_and_is_promoted(
    cluster: LocalCluster, api: kubernetes.client.ApiClient, namespace: str, operator: OperatorProcess,
    tmp_path: Path,
) -> None:
    data, output = tmp_path / "churn.csv", tmp_path / "output"
    subprocess.run(
        [sys.executable, "-m", "kubetrain_trainer.datagen", "tabular", "--out", str(data),
         "--rows", "2000", "--seed", "0"],
        check=True,
    )
    manifest = example("user-script-torchrun.yaml")
    manifest["spec"]["args"][0] = str(USER_CODE / "train_with_sdk.py")
    manifest["spec"]["dataset"]["uri"] = f"file://{data}"
    manifest["spec"]["output"]["uri"] = f"file://{output}"
    jobs, status = run_to_success(manifest, cluster, api, namespace, operator)
    name = manifest["metadata"]["name"]

    metrics = status["metrics"]
    assert metrics["accuracy"] >= 0.75 and set(metrics) == {"accuracy", "loss"}, metrics
    progress = status["progress"]
    assert progress["percent"] == pytest.approx(100.0) and progress["totalEpochs"] == 6, progress
    assert progress["metrics"]["validationLoss"] > 0, progress
    checkpoint = status["lastCheckpoint"]
    assert checkpoint["step"] == progress["step"] == progress["totalSteps"], (checkpoint, progress)
    assert checkpoint["digest"] == file_digest(output / f"checkpoint-{checkpoint['step']}.pt")

    provenance = status["provenance"]
    assert provenance["datasetUri"] == f"file://{data}" and provenance["datasetDigest"] == file_digest(data)
    assert provenance["datasetProfile"]["rows"] == 2000 and provenance["datasetProfile"]["missingValues"] == 0
    assert sum(provenance["datasetProfile"]["classCounts"].values()) == 2000, provenance["datasetProfile"]
    assert (provenance["datasetLicense"], provenance["datasetConsentBasis"]) == ("CC-BY-4.0", "contract")
    assert provenance["weightsDigest"] == file_digest(output / "model.pt")
    assert provenance["codeVersion"] == "train_with_sdk/1"

    card = json.loads((output / "model-card.json").read_text())
    assert card["metrics"] == metrics and card["weights"]["sha256"] == provenance["weightsDigest"]
    assert (card["data"]["license"], card["data"]["consentBasis"]) == ("CC-BY-4.0", "contract")
    assert card["job"]["name"] == name and card["model"]["name"] == "churn-mlp"
    # The history the SDK kept beside the model: each progress() a train record, each
    # log_metrics() a validation one, finish() the test one; the curves; its own log lines.
    history = parse_history((output / "metrics.jsonl").read_text())
    assert [r.step for r in history if r.phase == "train"] == list(range(1, progress["totalSteps"] + 1))
    assert [set(r.metrics) for r in history if r.phase == "validation"] == [{"validationLoss"}] * 6
    assert [r.metrics for r in history if r.phase == "test"] == [metrics]
    assert (output / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert card["history"]["curves"]["path"] == "curves.png"
    assert '"event": "finished"' in (output / "logs" / "rank-0.log").read_text()

    promoted = jobs.wait_condition(name, "Promoted")
    assert promoted["status"] == "True", promoted
    version = Registry(api, namespace).version(jobs.status(name)["modelVersion"])
    assert version is not None and version["spec"]["metrics"] == metrics
    assert version["spec"]["provenance"]["weightsDigest"] == provenance["weightsDigest"]
    # Budget accounting is the operator's, from the spec and the run's times, whatever code runs.
    assert status["cost"]["usedGpuHours"] == 0 and provenance["startTime"] and provenance["completionTime"]
    listing = cluster.kubectl("get", "tj", name, "-n", namespace).stdout
    assert "Succeeded" in listing and f"{metrics['accuracy']:.4g}"[:4] in listing and " 100" in listing, listing
