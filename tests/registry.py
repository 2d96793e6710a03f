"""Helpers for the model registry's resources (Model, ModelVersion, TrainingSchedule) in tests."""

from __future__ import annotations

import json
from typing import Any

import kubernetes

from tests.helpers import wait_for
from tests.jobs import GROUP, VERSION, Jobs


def report(metrics: dict[str, float], **provenance: str) -> str:
    """A trainer final report (docs/contracts.md) for a KWOK pod's termination message."""
    document: dict[str, Any] = {"outcome": "Succeeded", "reason": "Completed", "message": "done", "metrics": metrics}
    if provenance:
        document["provenance"] = provenance
    return json.dumps(document)


def finish(
    jobs: Jobs, name: str, metrics: dict[str, float], workers: int = 1, image_id: str = "", **provenance: str
) -> None:
    """Ends every worker of a KWOK job successfully, rank 0 with the given final report (and, as
    its kubelet would report it, the imageID the image resolved to)."""
    pods = jobs.wait_pods(name, workers, phase="Running")
    for index, pod in enumerate(pods):
        message = report(metrics, **provenance) if index == 0 else ""
        jobs.end_pod(pod.metadata.name, "Succeeded", 0, message, image_id if index == 0 else "")
    jobs.wait_phase(name, "Succeeded")


class Registry:
    def __init__(self, api: kubernetes.client.ApiClient, namespace: str) -> None:
        self.ns = namespace
        self.custom = kubernetes.client.CustomObjectsApi(api)

    def _get(self, plural: str, name: str) -> dict[str, Any] | None:
        try:
            return self.custom.get_namespaced_custom_object(GROUP, VERSION, self.ns, plural, name)
        except kubernetes.client.exceptions.ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def model(self, name: str) -> dict[str, Any] | None:
        return self._get("models", name)

    def version(self, name: str) -> dict[str, Any] | None:
        return self._get("modelversions", name)

    def versions(self, selector: str) -> list[dict[str, Any]]:
        listed = self.custom.list_namespaced_custom_object(GROUP, VERSION, self.ns, "modelversions",
                                                           label_selector=selector)
        return sorted(listed["items"], key=lambda v: v["spec"]["version"])

    def patch_model(self, name: str, spec: dict[str, Any]) -> None:
        self.custom.patch_namespaced_custom_object(GROUP, VERSION, self.ns, "models", name, {"spec": spec})

    def wait_promoted(self, model: str, version: str, timeout: float = 30) -> dict[str, Any]:
        def promoted() -> dict[str, Any] | None:
            found = self.model(model)
            status = (found or {}).get("status") or {}
            return status if status.get("promotedVersion") == version else None

        try:
            return wait_for(promoted, timeout=timeout, what=f"Model {model} promoting {version}")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; model now: {self.model(model)}") from None

    def create_schedule(self, body: dict[str, Any]) -> None:
        self.custom.create_namespaced_custom_object(GROUP, VERSION, self.ns, "trainingschedules", body)

    def patch_schedule(self, name: str, spec: dict[str, Any]) -> None:
        self.custom.patch_namespaced_custom_object(GROUP, VERSION, self.ns, "trainingschedules", name,
                                                   {"spec": spec})
