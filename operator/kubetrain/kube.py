"""The few Kubernetes API calls the operator makes, each idempotent.

Everything the operator does to the cluster goes through here, so RBAC (charts/) can list
exactly these verbs and resources. kopf itself also needs list/watch on what it watches
(trainingjobs, pods, dataresidencypolicies) and, with the residency webhook enabled, create and
patch on admissionregistration.k8s.io validatingwebhookconfigurations and
mutatingwebhookconfigurations (it manages both, named `kubetrain-residency.kubetrain.io`).
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from typing import Any

import kubernetes
from kubernetes.client.exceptions import ApiException

GROUP = "kubetrain.io"
VERSION = "v1alpha1"
PLURAL = "trainingjobs"
POLICY_PLURAL = "dataresidencypolicies"
MANAGED_BY = "app.kubernetes.io/managed-by=kubetrain"
JOB_LABEL = "kubetrain.io/job-name"
COMPONENT = "kubetrain-operator"

log = logging.getLogger("kubetrain.kube")


class Conflict(RuntimeError):
    """The job changed while we reconciled it; reconcile again from a fresh read."""


class Kube:
    """Thin, typed wrapper over the official client for the operator's calls."""

    def __init__(self, api: kubernetes.client.ApiClient) -> None:
        self.api = api
        self.core = kubernetes.client.CoreV1Api(api)
        self.custom = kubernetes.client.CustomObjectsApi(api)
        self.rbac = kubernetes.client.RbacAuthorizationV1Api(api)

    def get_job(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return self.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def list_policies(self) -> list[dict[str, Any]]:
        """Every DataResidencyPolicy (cluster-scoped); none while the CRD is not installed."""
        try:
            return list(self.custom.list_cluster_custom_object(GROUP, VERSION, POLICY_PLURAL)["items"])
        except ApiException as exc:
            if exc.status == 404:
                return []
            raise

    def namespace_labels(self, namespace: str) -> dict[str, str]:
        return dict(self.core.read_namespace(namespace).metadata.labels or {})

    def claim_storage_class(self, namespace: str, claim: str) -> str | None:
        """The claim's storageClassName; None when the claim does not exist or has no class."""
        try:
            pvc = self.core.read_namespaced_persistent_volume_claim(claim, namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return pvc.spec.storage_class_name

    def list_children(self, namespace: str, job: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The job's pods and services, found by label (owner references are checked by the caller)."""
        selector = f"{MANAGED_BY},{JOB_LABEL}={job}"
        pods = self.core.list_namespaced_pod(namespace, label_selector=selector).items
        services = self.core.list_namespaced_service(namespace, label_selector=selector).items
        to_dict = self.api.sanitize_for_serialization
        return [to_dict(p) for p in pods], [to_dict(s) for s in services]

    def create(self, namespace: str, obj: dict[str, Any]) -> dict[str, Any] | None:
        """Creates `obj` unless it exists; returns the created object, None when it existed."""
        kind = obj["kind"]
        creators = {
            "Pod": self.core.create_namespaced_pod,
            "Service": self.core.create_namespaced_service,
            "ServiceAccount": self.core.create_namespaced_service_account,
            "Role": self.rbac.create_namespaced_role,
            "RoleBinding": self.rbac.create_namespaced_role_binding,
        }
        if kind not in creators:
            raise ValueError(f"the operator does not create {kind} objects")
        try:
            created = creators[kind](namespace, obj)
        except ApiException as exc:
            if exc.status == 409:
                return None
            raise
        return dict(self.api.sanitize_for_serialization(created))

    def delete_pod(self, namespace: str, name: str) -> None:
        try:
            self.core.delete_namespaced_pod(name, namespace)
        except ApiException as exc:
            if exc.status != 404:
                raise

    def delete_job(self, namespace: str, name: str, uid: str) -> None:
        """Deletes the job itself (TTL after finish); children follow by garbage collection."""
        try:
            self.custom.delete_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, name,
                body={"preconditions": {"uid": uid}, "propagationPolicy": "Background"},
            )
        except ApiException as exc:
            if exc.status not in (404, 409):
                raise

    def patch_status(
        self, namespace: str, name: str, resource_version: str, status: dict[str, Any]
    ) -> dict[str, Any] | None:
        """Merge-patches the operator's status fields, guarded by resourceVersion so a stale
        reconcile can never overwrite a newer decision; returns the job as written."""
        body = {"metadata": {"resourceVersion": resource_version}, "status": status}
        try:
            return self.custom.patch_namespaced_custom_object_status(GROUP, VERSION, namespace, PLURAL, name, body)
        except ApiException as exc:
            if exc.status == 409:
                raise Conflict(f"{namespace}/{name} changed during reconcile") from exc
            if exc.status != 404:
                raise
        return None

    def post_event(self, job: dict[str, Any], type_: str, reason: str, message: str) -> None:
        meta = job["metadata"]
        now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        body = {
            "metadata": {"name": f"{meta['name']}.{uuid.uuid4().hex[:16]}", "namespace": meta["namespace"]},
            "involvedObject": {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "TrainingJob",
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta["uid"],
                "resourceVersion": meta.get("resourceVersion"),
            },
            "type": type_,
            "reason": reason,
            "message": message[:1024],
            "source": {"component": COMPONENT},
            "reportingComponent": COMPONENT,
            "reportingInstance": COMPONENT,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        try:
            self.core.create_namespaced_event(meta["namespace"], body)
        except ApiException as exc:
            log.warning("event %s for %s/%s not recorded: %s", reason, meta["namespace"], meta["name"], exc.reason)
