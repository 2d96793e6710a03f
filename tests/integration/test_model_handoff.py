"""From a ModelVersion to predictions, against the real control plane: `kubetrain predict
MODEL[:VERSION]` resolves the Model's promoted version (or the named one) to its model card and
predicts with the trainer's own predictor; `kubetrain serving` renders the Deployment that serves
it, whose pod (on the executing local node) answers HTTP requests as the offline predictor does.
Pinning `promotedVersion` back (a rollback) changes what is predicted and, once re-applied,
what is served.

The two versions' weights are real (the trainer, run locally); their runs on the cluster are KWOK
workers whose final report names those outputs, as a trainer pod's would."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import yaml

from kubetrain.client import Client, card_uri
from kubetrain.devcluster.cluster import LocalCluster
from kubetrain_trainer import datagen
from kubetrain_trainer.predict import Predictor
from tests.builders import example
from tests.helpers import wait_for
from tests.jobs import Jobs
from tests.operator_process import OperatorProcess
from tests.registry import Registry, finish
from tests.training import harness

pytestmark = pytest.mark.cluster

PASSING = {"f1": 0.95, "loss": 0.2, "accuracy": 0.95}
TASK: dict[str, Any] = {"type": "tabular-classification", "epochs": 1, "batchSize": 64, "model": {"hiddenSizes": [16]}}


@pytest.fixture(scope="module")
def outputs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, Any]]]:
    """Two real trained versions (different seeds), and each one's final report."""
    work = tmp_path_factory.mktemp("predict-cli")
    data = datagen.write("tabular", work / "tabular.csv", 600, seed=0)
    pods = [
        harness.start(work / f"run-{seed}", {**TASK, "seed": seed}, f"file://{data}",
                      f"file://{work / f'run-{seed}' / 'output'}", job=f"run-{seed}")[0]
        for seed in (1, 2)
    ]
    harness.wait(pods, timeout=540)
    reports = [pod.report() for pod in pods]
    assert all(report is not None for report in reports), harness.describe(pods)
    return data, [report for report in reports if report is not None]


def record(jobs: Jobs, name: str, report: dict[str, Any]) -> None:
    manifest = copy.deepcopy(example("model-fraud-gated.yaml"))
    manifest["metadata"]["name"] = name
    manifest["spec"]["workers"] = 1
    jobs.create(manifest)
    finish(jobs, name, PASSING, **{k: v for k, v in report["provenance"].items() if isinstance(v, str)})


def predict(cluster: LocalCluster, namespace: str, reference: str, source: Path) -> list[dict[str, Any]]:
    result = subprocess.run(
        [sys.executable, "-m", "kubetrain.cli", "predict", reference, "--input", str(source),
         "--kubeconfig", str(cluster.kubeconfig), "-n", namespace],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def offline(report: dict[str, Any], source: Path) -> list[dict[str, Any]]:
    predictor = Predictor.load(report["provenance"]["modelCardUri"])
    return [p.model_dump() for p in predictor.predict_features(predictor.file_features(source))]


def test_predict_follows_the_promoted_version_and_its_rollback(
    outputs: tuple[Path, list[dict[str, Any]]], cluster: LocalCluster, api: kubernetes.client.ApiClient,
    namespace: str, operator: OperatorProcess, tmp_path: Path,
) -> None:
    data, (first, second) = outputs
    source = tmp_path / "rows.csv"
    source.write_text("\n".join(data.read_text().splitlines()[:21]) + "\n")
    expected_first, expected_second = offline(first, source), offline(second, source)
    assert expected_first != expected_second, "two seeds should give two different models"

    jobs, registry = Jobs(api, namespace), Registry(api, namespace)
    record(jobs, "fraud-1", first)
    registry.wait_promoted("fraud", "fraud-v1")
    record(jobs, "fraud-2", second)
    registry.wait_promoted("fraud", "fraud-v2")

    assert predict(cluster, namespace, "fraud", source) == expected_second
    assert predict(cluster, namespace, "fraud:1", source) == expected_first

    registry.patch_model("fraud", {"promotedVersion": "fraud-v1"})
    registry.wait_promoted("fraud", "fraud-v1")
    assert predict(cluster, namespace, "fraud", source) == expected_first

    # The Python client resolves the same way, for notebooks: the version's card, then the predictor.
    client = Client(namespace=namespace, kubeconfig=cluster.kubeconfig)
    version = client.resolve_version("fraud")
    assert version.metadata.name == "fraud-v1"
    predictor = Predictor.load(card_uri(version), version.spec.provenance.weights_digest)
    assert [p.model_dump() for p in predictor.predict_features(predictor.file_features(source))] == expected_first


def test_predict_says_what_is_missing(cluster: LocalCluster, namespace: str, tmp_path: Path) -> None:
    source = tmp_path / "rows.jsonl"
    source.write_text("[0.0]\n")
    result = subprocess.run(
        [sys.executable, "-m", "kubetrain.cli", "predict", "nosuch", "--input", str(source),
         "--kubeconfig", str(cluster.kubeconfig), "-n", namespace],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 1
    assert f"Model {namespace}/nosuch not found" in result.stderr


def served(cluster: LocalCluster, namespace: str, port: int) -> None:
    """Renders the promoted version's serving manifests and applies them, as a user pipes
    `kubetrain serving` into `kubectl apply`; adapted to the dev cluster's executing node, whose
    pods share the host's loopback (so the old pod goes before the new one binds the port)."""
    rendered = subprocess.run(
        [sys.executable, "-m", "kubetrain.cli", "serving", "fraud", "--image", "kubetrain-trainer:dev",
         "--port", str(port), "--kubeconfig", str(cluster.kubeconfig), "-n", namespace],
        capture_output=True, text=True, timeout=60,
    )
    assert rendered.returncode == 0, rendered.stderr
    objects = list(yaml.safe_load_all(rendered.stdout))
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    deployment["spec"]["strategy"] = {"type": "Recreate"}
    deployment["spec"]["template"]["spec"]["nodeSelector"] = {"kubetrain.io/node-pool": "local"}
    deployment["spec"]["template"]["spec"]["tolerations"] = [
        {"key": "kubetrain.io/local", "operator": "Exists", "effect": "NoSchedule"}
    ]
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump_all(objects))


def call(url: str, body: dict[str, Any] | None = None) -> dict[str, Any] | None:
    request = urllib.request.Request(url, data=None if body is None else json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            loaded: dict[str, Any] = json.loads(answer.read())
            return loaded
    except (OSError, urllib.error.HTTPError):
        return None


def serving_version(base: str, digest: str) -> dict[str, Any]:
    """Waits until the predictor answers with the weights of `digest` (a rollout replaces it)."""
    return wait_for(lambda: (found := call(f"{base}/v1/models/fraud")) and found["version"] == digest and found,
                    timeout=180, what=f"the predictor serving {digest}")


def test_the_served_model_answers_as_the_offline_predictor_and_follows_a_rollback(
    outputs: tuple[Path, list[dict[str, Any]]], cluster: LocalCluster, api: kubernetes.client.ApiClient,
    namespace: str, operator: OperatorProcess,
) -> None:
    data, (first, second) = outputs
    rows = [line.split(",") for line in data.read_text().splitlines()[1:6]]
    header = data.read_text().splitlines()[0].split(",")
    instances = [{name: float(value) for name, value in zip(header, row, strict=True) if name != "label"}
                 for row in rows]
    jobs, registry = Jobs(api, namespace), Registry(api, namespace)
    record(jobs, "fraud-1", first)
    registry.wait_promoted("fraud", "fraud-v1")
    record(jobs, "fraud-2", second)
    registry.wait_promoted("fraud", "fraud-v2")

    port = harness.free_port()
    base = f"http://127.0.0.1:{port}"
    served(cluster, namespace, port)
    serving_version(base, second["provenance"]["weightsDigest"])
    answer = call(f"{base}/v1/models/fraud:predict", {"instances": instances})
    offline_second = Predictor.load(second["provenance"]["modelCardUri"]).predict(instances)
    assert answer == {"predictions": [p.model_dump() for p in offline_second]}

    registry.patch_model("fraud", {"promotedVersion": "fraud-v1"})
    registry.wait_promoted("fraud", "fraud-v1")
    served(cluster, namespace, port)
    serving_version(base, first["provenance"]["weightsDigest"])
    answer = call(f"{base}/v1/models/fraud:predict", {"instances": instances})
    offline_first = Predictor.load(first["provenance"]["modelCardUri"]).predict(instances)
    assert answer == {"predictions": [p.model_dump() for p in offline_first]}
    assert offline_first != offline_second
