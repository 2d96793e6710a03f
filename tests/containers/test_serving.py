"""Handoff on the real node: two runs of the trainer image promote two ModelVersions of one Model,
`kubetrain serving` renders the predictor for the promoted one, and its Pod (the trainer image in
predictor mode, no API token, the claim read-only) answers through its Service exactly as the
offline predictor does on the same files. Pinning `promotedVersion` back and applying the
rendering again rolls the served weights back too."""

from __future__ import annotations

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

from kubetrain.devcluster.cluster import LocalCluster
from kubetrain_trainer import datagen
from kubetrain_trainer.predict import Predictor
from tests.containers.conftest import OUTPUT_CLAIM, REPO, generate_tabular
from tests.helm import Helm
from tests.helpers import wait_for
from tests.jobs import Jobs
from tests.registry import Registry

pytestmark = [pytest.mark.containers, pytest.mark.timeout(2400)]

MOUNT_DATA = {"name": "data", "mountPath": "/data"}


def run(name: str, seed: int) -> dict[str, Any]:
    """The gated example on the kind values' `cpu` pool, with its data made in an init step and
    its model written to the claim (`pvc://`), where the predictor will read it."""
    job = yaml.safe_load((REPO / "examples" / "model-fraud-gated.yaml").read_text())
    job["metadata"]["name"] = name
    spec = job["spec"]
    spec.update(workers=1, nodePool="cpu", resources={"cpu": "500m", "memory": "1Gi"})
    spec["task"].update(epochs=2, seed=seed)
    spec["dataset"] = {"uri": "file:///data/fraud.csv"}
    spec["output"] = {"uri": f"pvc://kubetrain-output/{name}"}
    spec["evaluation"] = {"gates": [{"metric": "accuracy", "op": ">=", "value": 0.5}]}
    spec["podTemplate"] = {"spec": {
        "initContainers": [{"name": "data", "command": generate_tabular("/data/fraud.csv", 1000),
                            "volumeMounts": [MOUNT_DATA]}],
        "containers": [{"name": "trainer", "volumeMounts": [
            MOUNT_DATA, {"name": "output", "mountPath": "/mnt/pvc/kubetrain-output"},
        ]}],
        "volumes": [{"name": "data", "emptyDir": {}},
                    {"name": "output", "persistentVolumeClaim": {"claimName": "kubetrain-output"}}],
    }}
    return job


def serve(cluster: LocalCluster, namespace: str, image: str) -> str:
    """`kubetrain serving fraud --image ... | kubectl apply -f -`; the Service's cluster IP."""
    rendered = subprocess.run(
        [sys.executable, "-m", "kubetrain.cli", "serving", "fraud", "--image", image,
         f"--kubeconfig={cluster.kubeconfig}", "-n", namespace],
        capture_output=True, text=True, timeout=60,
    )
    assert rendered.returncode == 0, rendered.stderr
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=rendered.stdout)
    objects = list(yaml.safe_load_all(rendered.stdout))
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    # Until the rollout is complete the Service may still route to the previous version's pod.
    cluster.kubectl("rollout", "status", "-n", namespace, f"deployment/{deployment['metadata']['name']}",
                    "--timeout=300s")
    service = next(o for o in objects if o["kind"] == "Service")
    return str(cluster.kubectl("get", "service", "-n", namespace, service["metadata"]["name"],
                               "-o", "jsonpath={.spec.clusterIP}").stdout)


def call(url: str, body: dict[str, Any] | None = None) -> dict[str, Any] | None:
    request = urllib.request.Request(url, data=None if body is None else json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            loaded: dict[str, Any] = json.loads(answer.read())
            return loaded
    except (OSError, urllib.error.HTTPError):
        return None


def offline(output: Path, instances: list[dict[str, float]]) -> list[dict[str, Any]]:
    """The offline predictor on the files the Pod serves, read from the host's side of the claim."""
    card = json.loads((output / "model-card.json").read_text())
    card["weights"]["uri"] = str(output / "model.safetensors")
    return [p.model_dump() for p in Predictor.from_card(card).predict(instances)]


def test_a_promoted_version_is_served_in_containers_and_follows_a_rollback(
    real_cluster: LocalCluster, real_api: kubernetes.client.ApiClient, helm_operator: Helm,
    project_images: dict[str, str], real_namespace: str, output_dir: Path,
) -> None:
    jobs, registry = Jobs(real_api, real_namespace), Registry(real_api, real_namespace)
    real_cluster.apply([OUTPUT_CLAIM], namespace=real_namespace)
    for version, name in enumerate(("fraud-1", "fraud-2"), start=1):
        jobs.create(run(name, seed=version))
        jobs.wait_phase(name, "Succeeded", timeout=600)
        registry.wait_promoted("fraud", f"fraud-v{version}", timeout=60)

    data = datagen.write("tabular", output_dir.parent / "rows.csv", 5, seed=1)
    header, *rows = [line.split(",") for line in data.read_text().splitlines()]
    instances = [{name: float(value) for name, value in zip(header, row, strict=True) if name != "label"}
                 for row in rows]

    for served, other in (("fraud-2", "fraud-1"), ("fraud-1", "fraud-2")):
        if served == "fraud-1":
            registry.patch_model("fraud", {"promotedVersion": "fraud-v1"})
            registry.wait_promoted("fraud", "fraud-v1")
        address = serve(real_cluster, real_namespace, project_images["trainer"])
        digest = json.loads((output_dir / served / "model-card.json").read_text())["weights"]["sha256"]
        expected = {"predictions": offline(output_dir / served, instances)}
        assert expected != {"predictions": offline(output_dir / other, instances)}, "the two versions differ"

        def answers_as_offline() -> bool:
            found = call(f"http://{address}/v1/models/fraud")
            answer = call(f"http://{address}/v1/models/fraud:predict", {"instances": instances})
            return bool(found) and found["version"] == f"sha256:{digest}" and answer == expected

        # Several answers in a row, each the served version's card and exactly the offline
        # predictions: after the rollout the old pod still answers until it has left the
        # Service's endpoints and the proxy's rules (seen once in CI: 5 cards from the new pod,
        # then a prediction from the old one).
        wait_for(lambda: all(answers_as_offline() for _ in range(5)), timeout=300,
                 what=f"the Service answering with the weights of {served}, as the offline predictor does")
