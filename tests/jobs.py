"""Helpers for TrainingJob tests on the real control plane."""

from __future__ import annotations

import copy
from typing import Any

import kubernetes
import kubernetes.watch

from tests.helpers import wait_for

GROUP, VERSION, PLURAL = "kubetrain.io", "v1alpha1", "trainingjobs"


class Jobs:
    """Reads and drives TrainingJobs and their pods in one namespace."""

    def __init__(self, api: kubernetes.client.ApiClient, namespace: str) -> None:
        self.api = api
        self.ns = namespace
        self.custom = kubernetes.client.CustomObjectsApi(api)
        self.core = kubernetes.client.CoreV1Api(api)

    def create(self, manifest: dict[str, Any], **spec_overrides: Any) -> str:
        body = copy.deepcopy(manifest)
        body["metadata"].pop("namespace", None)
        body["spec"].update(spec_overrides)
        self.custom.create_namespaced_custom_object(GROUP, VERSION, self.ns, PLURAL, body)
        return str(body["metadata"]["name"])

    def get(self, name: str) -> dict[str, Any]:
        return self.custom.get_namespaced_custom_object(GROUP, VERSION, self.ns, PLURAL, name)

    def exists(self, name: str) -> bool:
        items = self.custom.list_namespaced_custom_object(GROUP, VERSION, self.ns, PLURAL)["items"]
        return any(i["metadata"]["name"] == name for i in items)

    def patch_spec(self, name: str, spec: dict[str, Any]) -> None:
        self.custom.patch_namespaced_custom_object(GROUP, VERSION, self.ns, PLURAL, name, {"spec": spec})

    def delete(self, name: str) -> None:
        self.custom.delete_namespaced_custom_object(GROUP, VERSION, self.ns, PLURAL, name)

    def status(self, name: str) -> dict[str, Any]:
        return self.get(name).get("status") or {}

    def condition(self, name: str, type_: str) -> dict[str, Any] | None:
        return next((c for c in self.status(name).get("conditions", []) if c["type"] == type_), None)

    def wait_phase(self, name: str, phase: str, timeout: float = 60) -> dict[str, Any]:
        def reached() -> dict[str, Any] | None:
            status = self.status(name)
            return status if status.get("phase") == phase else None

        try:
            return wait_for(reached, timeout=timeout, what=f"{self.ns}/{name} phase {phase}")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; status now: {self.status(name)}") from None

    def pods(self, name: str, include_terminating: bool = False) -> list[Any]:
        pods = self.core.list_namespaced_pod(self.ns, label_selector=f"kubetrain.io/job-name={name}").items
        if not include_terminating:
            pods = [p for p in pods if p.metadata.deletion_timestamp is None]
        return sorted(pods, key=lambda p: p.metadata.name)

    def wait_pods(self, name: str, count: int, phase: str | None = None, timeout: float = 60) -> list[Any]:
        def ready() -> list[Any] | None:
            pods = self.pods(name, include_terminating=True)
            live = [p for p in pods if p.metadata.deletion_timestamp is None]
            if (
                len(pods) == count
                and len(live) == count
                and (phase is None or all(p.status.phase == phase for p in live))
            ):
                return live
            return None

        return wait_for(ready, timeout=timeout, what=f"{count} pods of {name} in phase {phase}")

    def end_pod(self, pod_name: str, outcome: str, exit_code: int = 1, message: str = "", image_id: str = "") -> None:
        """Makes a pod on a KWOK node Succeed or Fail (see kwok-stages.yaml)."""
        annotations = {"kwok.kubetrain.io/outcome": outcome, "kwok.kubetrain.io/exit-code": str(exit_code)}
        if message:
            annotations["kwok.kubetrain.io/termination-message"] = message
        if image_id:
            annotations["kwok.kubetrain.io/image-id"] = image_id
        self.core.patch_namespaced_pod(pod_name, self.ns, {"metadata": {"annotations": annotations}})

    def events(self, name: str) -> list[Any]:
        return self.core.list_namespaced_event(
            self.ns, field_selector=f"involvedObject.name={name},involvedObject.kind=TrainingJob"
        ).items

    def wait_events(self, name: str, *reasons: str, timeout: float = 30) -> list[Any]:
        """The job's Events once every reason is among them: kopf posts an Event after the status
        write it announces, so a test that saw the status may not see the Event yet."""
        wanted = set(reasons)

        def posted() -> list[Any] | None:
            events = self.events(name)
            return events if wanted <= {e.reason for e in events} else None

        return wait_for(posted, timeout=timeout, what=f"{self.ns}/{name} events {sorted(wanted)}")

    def watch_until_deleted(self, name: str, resource_version: str, timeout: float = 60) -> dict[str, Any]:
        """The job as it was when deleted (the DELETED event carries its last state), watched from
        `resource_version` on, so no update in between can be missed however fast it comes."""
        stream = kubernetes.watch.Watch().stream(
            self.custom.list_namespaced_custom_object, GROUP, VERSION, self.ns, PLURAL,
            field_selector=f"metadata.name={name}", resource_version=resource_version, timeout_seconds=int(timeout),
        )
        for event in stream:
            if event["type"] == "DELETED":
                return dict(event["object"])
        raise AssertionError(f"{self.ns}/{name} was not deleted within {timeout}s; status now: {self.status(name)}")

    def wait_condition(self, name: str, type_: str, timeout: float = 30) -> dict[str, Any]:
        try:
            return wait_for(lambda: self.condition(name, type_), timeout=timeout, what=f"{self.ns}/{name} {type_}")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; status now: {self.status(name)}") from None
