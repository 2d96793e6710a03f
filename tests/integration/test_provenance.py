"""Provenance on the real control plane: who submitted a job (from the API server's authenticated
user, recorded by the mutating webhook and immutable after), and the chain data -> model: the
real trainer on the executing local node reads a generated data set, and the ModelVersion it is
recorded as carries the data set's digest (computed here independently), the weights' digest and
the model card, queryable by label, after the job is gone."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes
import pytest
from kubernetes.client.exceptions import ApiException

from kubetrain.devcluster.cluster import LocalCluster
from tests.builders import example
from tests.helpers import file_digest, wait_for
from tests.jobs import Jobs
from tests.local_training import wait_succeeded_while_alive
from tests.operator_process import OperatorProcess
from tests.registry import Registry, finish

pytestmark = pytest.mark.cluster

SUBMITTED_BY = "kubetrain.io/submitted-by"


@pytest.fixture
def jobs(api: kubernetes.client.ApiClient, namespace: str, operator: OperatorProcess) -> Jobs:
    return Jobs(api, namespace)


def whoami(api: kubernetes.client.ApiClient) -> str:
    review = kubernetes.client.AuthenticationV1Api(api).create_self_subject_review({})
    return str(review.status.user_info.username)



def test_submitter_is_recorded_at_create_and_cannot_be_changed(
    jobs: Jobs, api: kubernetes.client.ApiClient
) -> None:
    manifest = copy.deepcopy(example("model-fraud-gated.yaml"))
    manifest["spec"]["workers"] = 1
    manifest["metadata"]["annotations"] = {SUBMITTED_BY: "someone-else"}  # a forged claim is overwritten
    name = jobs.create(manifest)
    user = whoami(api)
    assert jobs.get(name)["metadata"]["annotations"][SUBMITTED_BY] == user

    with pytest.raises(ApiException) as refused:
        jobs.custom.patch_namespaced_custom_object(
            "kubetrain.io", "v1alpha1", jobs.ns, "trainingjobs", name,
            {"metadata": {"annotations": {SUBMITTED_BY: "someone-else"}}},
        )
    assert refused.value.status == 403 and "cannot be changed" in str(refused.value.body)

    image_digest = "sha256:" + "7e" * 32
    finish(
        jobs, name, {"f1": 0.95, "loss": 0.1}, image_id=f"ghcr.io/kubetrain/trainer@{image_digest}",
        datasetDigest="sha256:" + "0" * 64, codeVersion="0.1.0+test",
    )
    status = jobs.status(name)
    provenance = status["provenance"]
    assert provenance["submittedBy"] == user
    assert provenance["datasetUri"] == manifest["spec"]["dataset"]["uri"]
    assert provenance["trainerImage"] == "ghcr.io/kubetrain/trainer:0.1.0"
    assert provenance["trainerImageDigest"] == image_digest
    assert provenance["codeVersion"] == "0.1.0+test"
    assert provenance["config"]["epochs"] == 5 and provenance["config"]["learningRate"] == 0.001
    assert (provenance["startTime"], provenance["completionTime"]) == (status["startTime"], status["completionTime"])


def test_provenance_is_frozen_once_the_job_has_finished(jobs: Jobs) -> None:
    """The record must not change when its sources do: the pod that held rank 0's report is
    deleted and the spec edited after the end, and a reconcile of that edit keeps the record."""
    manifest = copy.deepcopy(example("pytorch-ddp.yaml"))
    manifest["spec"].update(workers=1, runPolicy={"cleanPodPolicy": "None"})
    name = jobs.create(manifest)
    finish(jobs, name, {"accuracy": 0.9}, datasetDigest="sha256:" + "1" * 64, weightsDigest="sha256:" + "2" * 64,
           codeVersion="0.1.0+frozen")
    before = jobs.status(name)["provenance"]
    assert before["datasetDigest"] == "sha256:" + "1" * 64 and before["codeVersion"] == "0.1.0+frozen"

    jobs.core.delete_collection_namespaced_pod(jobs.ns, label_selector=f"kubetrain.io/job-name={name}")
    wait_for(lambda: not jobs.pods(name, include_terminating=True), what="the finished job's pods deleted")
    # What the pods read is frozen once the job started (api/immutable.py); what may still change
    # (runPolicy, evaluation) is reconciled without touching the record.
    with pytest.raises(ApiException) as refused:
        jobs.patch_spec(name, {"dataset": {"uri": "file:///var/lib/kubetrain/data/other.csv"}})
    assert refused.value.status == 422 and "spec.dataset cannot change once the job has started" in refused.value.body
    jobs.patch_spec(name, {"runPolicy": {"cleanPodPolicy": "None", "ttlSecondsAfterFinished": 86400}})
    generation = jobs.get(name)["metadata"]["generation"]
    status = wait_for(
        lambda: (s := jobs.status(name)).get("observedGeneration") == generation and s,
        what="a reconcile of the edited spec",
    )
    assert status["provenance"] == before


@pytest.mark.training
def test_data_to_model_chain_with_the_real_trainer(
    jobs: Jobs, api: kubernetes.client.ApiClient, cluster: LocalCluster, namespace: str, tmp_path: Path
) -> None:
    data = tmp_path / "tabular.csv"
    subprocess.run(
        [sys.executable, "-m", "kubetrain_trainer.datagen", "tabular", "--out", str(data), "--rows", "800",
         "--seed", "3"],
        check=True,
    )
    output = tmp_path / "output"
    manifest: dict[str, Any] = copy.deepcopy(example("pytorch-ddp-local.yaml"))
    manifest["spec"].update(
        dataset={"uri": f"file://{data}"},
        output={"uri": f"file://{output}"},
        model={"name": "tabular"},
        evaluation={"gates": [{"metric": "accuracy", "op": ">=", "value": 0.5}]},
    )
    manifest["spec"]["task"]["epochs"] = 2
    name = jobs.create(manifest)
    try:
        wait_succeeded_while_alive(jobs, name, cluster.state_dir / "localnode" / "pods")
        promoted = jobs.wait_condition(name, "Promoted")
    except AssertionError as exc:
        pytest.fail(f"no Promoted condition: {exc}; status: {jobs.status(name)}")
    assert promoted["status"] == "True", promoted

    digest = file_digest(data).removeprefix("sha256:")
    registry = Registry(api, namespace)
    found = registry.versions(f"kubetrain.io/dataset-digest={digest[:32]}")
    assert len(found) == 1, [v["metadata"]["labels"] for v in registry.versions("kubetrain.io/model=tabular")]
    [version] = found
    provenance = version["spec"]["provenance"]
    assert provenance["datasetDigest"] == f"sha256:{digest}"
    assert provenance["weightsUri"] == f"file://{output}/model.safetensors"
    assert provenance["weightsDigest"] == file_digest(output / "model.safetensors")
    assert provenance["modelCardUri"] == f"file://{output}/model-card.json"
    card = json.loads((output / "model-card.json").read_text())
    assert card["data"]["sha256"] == digest and f"sha256:{card['weights']['sha256']}" == provenance["weightsDigest"]
    assert provenance["codeVersion"] == card["codeVersion"]
    assert (card["submittedBy"], card["trainerImage"]) == (whoami(api), provenance["trainerImage"])
    assert card["data"]["uri"] == provenance["datasetUri"] and card["config"]["epochs"] == 2
    assert provenance["submittedBy"] == whoami(api)
    assert version["spec"]["metrics"]["accuracy"] == pytest.approx(card["metrics"]["accuracy"])

    jobs.delete(name)
    wait_for(lambda: not jobs.exists(name), timeout=30, what="job deleted")
    listing = cluster.kubectl(
        "get", "modelversions", "-n", namespace, "-l", f"kubetrain.io/dataset-digest={digest[:32]}", "-o", "wide"
    ).stdout
    assert version["metadata"]["name"] in listing and digest in listing, listing
