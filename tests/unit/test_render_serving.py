"""`kubetrain serving`: a ModelVersion rendered as the Deployment and Service of the trainer
image's HTTP predictor, reading the version's weights by URI and digest with least privilege."""

from __future__ import annotations

from typing import Any

import yaml

from kubetrain.api.registry import ModelVersion
from kubetrain.render.serving import ServingSettings, claims, serving_objects
from tests.builders import EXAMPLES

CARD = "pvc://models/fraud-train/model-card.json"
DIGEST = "sha256:" + "ab" * 32


def version(name: str = "fraud-v2", **provenance: Any) -> ModelVersion:
    return ModelVersion.model_validate({
        "metadata": {"name": name},
        "spec": {"model": "fraud", "version": int(name.rsplit("v", 1)[1]), "sourceJob": {"name": "j", "uid": "u"},
                 "provenance": {"trainerImage": "img", "weightsUri": "pvc://models/fraud-train/model.safetensors",
                                "weightsDigest": DIGEST, "modelCardUri": CARD, **provenance}},
    })


def render(v: ModelVersion, **settings: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    deployment, service = serving_objects(v, CARD, ServingSettings(image="trainer:1", **settings))
    return deployment, service


def test_the_predictor_serves_the_versions_weights_by_uri_and_digest() -> None:
    deployment, service = render(version())
    pod = deployment["spec"]["template"]
    [container] = pod["spec"]["containers"]
    assert container["args"] == ["serve", "--model", CARD, "--name", "fraud", "--port", "8080",
                                 "--weights-digest", DIGEST]
    assert pod["metadata"]["labels"]["kubetrain.io/model-version"] == "fraud-v2"
    assert container["readinessProbe"]["httpGet"]["path"] == "/v1/models/fraud"
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert service["metadata"]["name"] == deployment["metadata"]["name"] == "fraud-predictor"


def test_a_rollback_changes_the_pod_template_so_the_pods_roll() -> None:
    newer, older = render(version("fraud-v2"))[0], render(version("fraud-v1"))[0]
    assert newer["spec"]["selector"] == older["spec"]["selector"]
    assert newer["spec"]["template"] != older["spec"]["template"]


def test_least_privilege() -> None:
    pod = render(version())[0]["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False and "serviceAccountName" not in pod
    [container] = pod["containers"]
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] and security["runAsNonRoot"] and security["capabilities"] == {
        "drop": ["ALL"]}
    assert {"name": "pvc-models", "persistentVolumeClaim": {"claimName": "models", "readOnly": True}} in pod["volumes"]
    assert {"name": "pvc-models", "mountPath": "/mnt/pvc/models", "readOnly": True} in container["volumeMounts"]
    with_identity = render(version(), service_account="fraud-reader")[0]["spec"]["template"]["spec"]
    assert with_identity["serviceAccountName"] == "fraud-reader" and with_identity["automountServiceAccountToken"]


def test_only_pvc_uris_need_a_claim() -> None:
    assert claims(["s3://b/m/model-card.json", "pvc://a/x", "pvc://a/y", "pvc://b/z", "file:///m"]) == ["a", "b"]


def test_the_example_is_what_kubetrain_serving_prints() -> None:
    card = "pvc://kubetrain-output/fraud-train/model-card.json"
    example = version(weightsUri="pvc://kubetrain-output/fraud-train/model.safetensors", modelCardUri=card,
                      weightsDigest="sha256:<spec.provenance.weightsDigest of fraud-v2>")
    rendered = serving_objects(example, card, ServingSettings(image="ghcr.io/acme/kubetrain-trainer:0.1.0"))
    assert list(yaml.safe_load_all((EXAMPLES / "serve-model.yaml").read_text())) == rendered
