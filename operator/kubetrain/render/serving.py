"""A ModelVersion -> the Deployment and Service that serve it with the trainer image's HTTP
predictor (`python -m kubetrain_trainer serve`, KServe v1 protocol), for `kubetrain serving`.

The version is resolved when the manifests are rendered (the Model's promotedVersion, or a named
one), so the Deployment names its weights by URI and digest and the pod needs no access to the
API: a rollback of the pin is a new render and apply, which rolls the pods to the older weights.
Least privilege: no service-account token unless a service account is named (for object-store
credentials through workload identity), a read-only claim for `pvc://` weights, a non-root
read-only container without capabilities."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict, Field

from kubetrain.api.contract import APP_COMPONENT_LABEL, APP_INSTANCE_LABEL, APP_NAME_LABEL
from kubetrain.api.registry import MODEL_LABEL, ModelVersion
from kubetrain.render.pods import CONTAINER_SECURITY_CONTEXT, POD_SECURITY_CONTEXT

PREDICTOR_APP = "kubetrain-predictor"
PREDICTOR_COMPONENT = "predictor"
MODEL_VERSION_LABEL = "kubetrain.io/model-version"
WEIGHTS_DIGEST_ANNOTATION = "kubetrain.io/weights-digest"
PVC_MOUNT_ROOT = "/mnt/pvc"  # where the trainer reads pvc://<claim>/<path> (kubetrain_trainer.storage)
TRAINER_UID = 1000


class ServingSettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    image: str = Field(min_length=1, description="The trainer image (its ENTRYPOINT runs the predictor's command).")
    port: int = Field(default=8080, ge=1, le=65535)
    replicas: int = Field(default=1, ge=1)
    service_account: str | None = Field(default=None, description="For object-store credentials (IRSA, GKE WI).")


def predictor_name(model: str) -> str:
    return f"{model}-predictor"


def claims(uris: list[str]) -> list[str]:
    """The persistent volume claims `pvc://` URIs read from, in first-seen order."""
    found: list[str] = []
    for uri in uris:
        parsed = urlparse(uri)
        if parsed.scheme == "pvc" and parsed.netloc not in found:
            found.append(parsed.netloc)
    return found


def _container(
    version: ModelVersion, card_uri: str, read_claims: list[str], settings: ServingSettings
) -> dict[str, Any]:
    model = version.spec.model
    args = ["serve", "--model", card_uri, "--name", model, "--port", str(settings.port)]
    if version.spec.provenance.weights_digest:
        args += ["--weights-digest", version.spec.provenance.weights_digest]
    mounts = [{"name": "tmp", "mountPath": "/tmp"}] + [
        {"name": f"pvc-{claim}", "mountPath": f"{PVC_MOUNT_ROOT}/{claim}", "readOnly": True}
        for claim in read_claims
    ]
    return {
        "name": PREDICTOR_COMPONENT,
        "image": settings.image,
        "args": args,
        "env": [{"name": "HOME", "value": "/tmp"}],
        "ports": [{"name": "http", "containerPort": settings.port}],
        "readinessProbe": {"httpGet": {"path": f"/v1/models/{model}", "port": "http"}, "periodSeconds": 5},
        "livenessProbe": {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 10},
        "volumeMounts": mounts,
        # The trainer pods' restricted settings, and more: a fixed user and a read-only root.
        "securityContext": {
            **POD_SECURITY_CONTEXT, **CONTAINER_SECURITY_CONTEXT, "runAsUser": TRAINER_UID,
            "readOnlyRootFilesystem": True,
        },
    }


def serving_objects(version: ModelVersion, card_uri: str, settings: ServingSettings) -> list[dict[str, Any]]:
    """The Deployment (its pod template names the version, so a new version rolls the pods) and
    its ClusterIP Service on port 80."""
    model = version.spec.model
    name = predictor_name(model)
    selector = {APP_NAME_LABEL: PREDICTOR_APP, APP_INSTANCE_LABEL: model}
    labels = {**selector, APP_COMPONENT_LABEL: PREDICTOR_COMPONENT, MODEL_LABEL: model,
              MODEL_VERSION_LABEL: version.metadata.name}
    annotations = {WEIGHTS_DIGEST_ANNOTATION: version.spec.provenance.weights_digest or ""}
    read_claims = claims([card_uri, version.spec.provenance.weights_uri or ""])
    volumes = [{"name": "tmp", "emptyDir": {}}] + [
        {"name": f"pvc-{claim}", "persistentVolumeClaim": {"claimName": claim, "readOnly": True}}
        for claim in read_claims
    ]
    pod_spec: dict[str, Any] = {
        "automountServiceAccountToken": settings.service_account is not None,
        "containers": [_container(version, card_uri, read_claims, settings)],
        "volumes": volumes,
    }
    if settings.service_account is not None:
        pod_spec["serviceAccountName"] = settings.service_account
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels, "annotations": annotations},
        "spec": {
            "replicas": settings.replicas,
            "selector": {"matchLabels": dict(selector)},
            # A new version's pods are ready before an old one goes: no request goes unanswered.
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {"metadata": {"labels": dict(labels), "annotations": dict(annotations)}, "spec": pod_spec},
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "labels": dict(labels)},
        "spec": {"selector": dict(selector), "ports": [{"name": "http", "port": 80, "targetPort": "http"}]},
    }
    return [deployment, service]
