"""The few Kubernetes API calls the operator makes, each idempotent.

Everything the operator does to the cluster goes through here, so RBAC (charts/) can list
exactly these verbs and resources, list and watch of the pods and services it manages
(controller/informer.py) included. kopf itself also needs list/watch on what it watches
(trainingjobs, dataresidencypolicies, budgetpolicies, models, modelversions, trainingschedules,
trainingsweeps) and, with the residency webhook enabled, create and
patch on admissionregistration.k8s.io validatingwebhookconfigurations and
mutatingwebhookconfigurations (it manages both, named `kubetrain-residency.kubetrain.io`).
With leader election, the replicas get, create and update one coordination.k8s.io Lease.
Where the cluster serves them, it creates scheduling.k8s.io/v1beta1 PodGroups (native gang
placement), having asked discovery once whether it does. Where Kueue is installed, it creates,
gets and patches the status of kueue.x-k8s.io Workloads and gets ResourceFlavors (docs/kueue.md).
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import logging
import uuid
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import kubernetes
import urllib3
from kubernetes.client.exceptions import ApiException
from kubernetes.client.rest import RESTResponse

from kubetrain.api import contract
from kubetrain.api.budget import BudgetPolicy
from kubetrain.api.identity import ApiInfo
from kubetrain.api.job import TrainingJob
from kubetrain.api.kueue import Workload
from kubetrain.api.podgroup import PodGroup
from kubetrain.api.registry import MODEL_LABEL, Model, ModelVersion
from kubetrain.api.residency import DataResidencyPolicy
from kubetrain.controller.metrics import OperatorMetrics

JOB = TrainingJob.api_info
# Kinds the operator creates as custom objects, by kind.
_CREATED_CUSTOM = {info.kind: info for info in (JOB, Model.api_info, ModelVersion.api_info, PodGroup.api_info,
                                                  Workload.api_info)}
MANAGED_BY = f"{contract.MANAGED_BY_LABEL}={contract.MANAGED_BY}"
COMPONENT = "kubetrain-operator"

log = logging.getLogger("kubetrain.kube")
T = TypeVar("T")


class Conflict(RuntimeError):
    """The job changed while we reconciled it; reconcile again from a fresh read."""


MERGE_PATCH = "application/merge-patch+json"
LIST_PAGE = 500
# (connect, read) seconds of a request that names none: without it a request on a connection
# that died silently (a node's conntrack entry gone, a dropped route) waits for TCP's own timeout,
# which is many minutes, holding a reconcile's lock or the thread of an admission review.
REQUEST_TIMEOUT = (10.0, 60.0)


CORE, RBAC, LEASES = "v1", "rbac.authorization.k8s.io/v1", "coordination.k8s.io/v1"


def _path(group_version: str, plural: str, namespace: str = "", name: str = "") -> str:
    """The REST path of a collection (no `name`) or an object, in `namespace` or cluster-scoped:
    the core group under /api, every other group under /apis."""
    root = "/api/v1" if group_version == CORE else f"/apis/{group_version}"
    scope = f"/namespaces/{namespace}" if namespace else ""
    return f"{root}{scope}/{plural}" + (f"/{name}" if name else "")


def _custom(info: ApiInfo, namespace: str = "", name: str = "") -> str:
    return _path(info.api_version, info.plural, namespace, name)


# What the operator creates, by kind: (group version, plural).
_CREATED = {
    "Pod": (CORE, "pods"),
    "Service": (CORE, "services"),
    "ServiceAccount": (CORE, "serviceaccounts"),
    "Role": (RBAC, "roles"),
    "RoleBinding": (RBAC, "rolebindings"),
    **{kind: (info.api_version, info.plural) for kind, info in _CREATED_CUSTOM.items()},
}


class Kube:
    """Thin wrapper over the official client's connection pool and credentials for the operator's
    calls. Bodies go out as the JSON the operator already holds and come back as parsed JSON: the
    generated API methods would validate every argument, serialise the body model by model and
    build typed models from the response, which the operator would turn back into dicts (the largest
    share of its CPU, bench/README.md). Every request goes through `_request`, which counts
    failures in kubetrain_api_errors_total{verb,resource}."""

    def __init__(
        self, api: kubernetes.client.ApiClient, metrics: OperatorMetrics,
        request_timeout: tuple[float, float] = REQUEST_TIMEOUT,
    ) -> None:
        self.api = api
        self.metrics = metrics
        self.request_timeout = request_timeout

    def _send(
        self, method: str, path: str, body: Any = None, query: list[tuple[str, str]] | None = None,
        content_type: str = "application/json", timeout: float | tuple[float, float] | None = None,
    ) -> RESTResponse:
        """One request, `body` sent as JSON, its answer not read yet; a status outside 2xx raises the
        client's ApiException (or its subclass for the status), as its methods do. `timeout`: the
        client's (connect, read) seconds, the Kube's `request_timeout` when None."""
        _, url, headers, _, _ = self.api.param_serialize(
            method, path, query_params=query, auth_settings=["BearerToken"],
            header_params={"Accept": "application/json", "Content-Type": content_type},
        )
        response = self.api.call_api(method, url, header_params=headers, body=body,
                                     _request_timeout=self.request_timeout if timeout is None else timeout)
        if not 200 <= response.status <= 299:
            text = response.read().decode("utf-8", "replace")
            raise ApiException.from_response(http_resp=response, body=text, data=None)
        return response

    def _call(
        self, method: str, path: str, body: Any = None, query: list[tuple[str, str]] | None = None,
        content_type: str = "application/json", timeout: float | tuple[float, float] | None = None,
    ) -> Any:
        """One request, its answer parsed from JSON (None for an empty body)."""
        data = self._send(method, path, body, query, content_type, timeout).read()
        return json.loads(data) if data else None

    def _request(self, verb: str, resource: str, request: Callable[[], T], done: tuple[int, ...] = ()) -> T:
        """Runs `request`, counting every failure (connection errors included) except API answers
        with a status in `done`: the idempotent "already so" ones, like 404 on a delete."""
        try:
            return request()
        except ApiException as exc:
            if exc.status not in done:
                self.metrics.api_errors.labels(verb, resource).inc()
            raise
        except urllib3.exceptions.HTTPError:
            self.metrics.api_errors.labels(verb, resource).inc()
            raise

    def _request_or_none(self, verb: str, resource: str, request: Callable[[], T], done: tuple[int, ...]) -> T | None:
        """`_request`, answering None for the statuses in `done`."""
        try:
            return self._request(verb, resource, request, done)
        except ApiException as exc:
            if exc.status in done:
                return None
            raise

    def get_job(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self._request_or_none(
            "get", JOB.plural,
            lambda: self._call("GET", _custom(JOB, namespace, name)), done=(404,),
        )

    def list_policies(self) -> list[dict[str, Any]]:
        """Every DataResidencyPolicy (cluster-scoped); none while the CRD is not installed."""
        return self._list_cluster(DataResidencyPolicy.api_info)

    def list_budget_policies(self) -> list[dict[str, Any]]:
        """Every BudgetPolicy (cluster-scoped); none while the CRD is not installed."""
        return self._list_cluster(BudgetPolicy.api_info)

    def _list_cluster(self, info: ApiInfo) -> list[dict[str, Any]]:
        listed = self._request_or_none(
            "list", info.plural, lambda: self._call("GET", _custom(info)),
            done=(404,),
        )
        return list(listed["items"]) if listed is not None else []

    def list_jobs(self, namespace: str, selector: str = "") -> list[dict[str, Any]]:
        """The namespace's TrainingJobs; with `selector`, those whose labels match it."""
        listed = self._request(
            "list", JOB.plural,
            lambda: self._call(
                "GET", _custom(JOB, namespace), query=[("labelSelector", selector)] if selector else None
            ),
        )
        return list(listed["items"])

    def get_custom(self, info: ApiInfo, namespace: str, name: str) -> dict[str, Any] | None:
        """A Model, ModelVersion, TrainingSchedule or TrainingSweep (its model's api_info); None when
        it does not exist."""
        return self._request_or_none(
            "get", info.plural,
            lambda: self._call("GET", _custom(info, namespace, name)), done=(404,),
        )

    def get_cluster_custom(self, info: ApiInfo, name: str) -> dict[str, Any] | None:
        """A cluster-scoped custom object (a Kueue ResourceFlavor); None when it does not exist."""
        return self._request_or_none(
            "get", info.plural,
            lambda: self._call("GET", _custom(info, name=name)), done=(404,),
        )

    def list_model_versions(self, namespace: str, model: str) -> list[dict[str, Any]]:
        selector, info = f"{MODEL_LABEL}={model}", ModelVersion.api_info
        listed = self._request(
            "list", info.plural,
            lambda: self._call("GET", _custom(info, namespace), query=[("labelSelector", selector)]),
        )
        return list(listed["items"])

    def patch_custom_status(self, info: ApiInfo, namespace: str, name: str, status: dict[str, Any]) -> None:
        """Merge-patches the status of a Model, TrainingSchedule or TrainingSweep (the operator owns them), or
        of a job's Kueue Workload (its Finished condition, its quota released after an eviction)."""
        self._request_or_none(
            "patch", f"{info.plural}/status",
            lambda: self._call(
                "PATCH", _custom(info, namespace, name) + "/status", {"status": status}, content_type=MERGE_PATCH
            ),
            done=(404,),
        )

    def namespace_labels(self, namespace: str) -> dict[str, str]:
        found = self._request("get", "namespaces", lambda: self._call("GET", _path(CORE, "namespaces", name=namespace)))
        return dict(found["metadata"].get("labels") or {})

    def node_labels(self, node: str) -> dict[str, str] | None:
        """The node's labels; None when the node is gone (a reclaimed spot node, a drained one)."""
        found = self._request_or_none(
            "get", "nodes", lambda: self._call("GET", _path(CORE, "nodes", name=node)), done=(404,)
        )
        return dict(found["metadata"].get("labels") or {}) if found is not None else None

    def claim_storage_class(self, namespace: str, claim: str) -> str | None:
        """The claim's storageClassName; None when the claim does not exist or has no class."""
        pvc = self._request_or_none(
            "get", "persistentvolumeclaims",
            lambda: self._call("GET", _path(CORE, "persistentvolumeclaims", namespace, claim)), done=(404,),
        )
        return pvc.get("spec", {}).get("storageClassName") if pvc is not None else None

    def list_resource_quotas(self, namespace: str) -> list[dict[str, Any]]:
        found = self._request(
            "list", "resourcequotas", lambda: self._call("GET", _path(CORE, "resourcequotas", namespace))
        )
        return list(found["items"])

    def list_managed(self, plural: str, namespace: str = "") -> tuple[list[dict[str, Any]], str]:
        """Every pod or service (`plural`) the operator manages, in `namespace` or the whole
        cluster, and the list's resourceVersion to watch from (controller/informer.py). Read in
        pages of LIST_PAGE, as client-go's reflector does, so no single answer is the whole cluster's."""
        items: list[dict[str, Any]] = []
        page: list[tuple[str, str]] = []
        path = _path(CORE, plural, namespace)
        while True:
            query = [("labelSelector", MANAGED_BY), ("limit", str(LIST_PAGE)), *page]
            listed = self._request("list", plural, functools.partial(self._call, "GET", path, query=query))
            items.extend(listed["items"])
            more = listed["metadata"].get("continue")
            if not more:
                return items, str(listed["metadata"]["resourceVersion"])
            page = [("continue", more)]

    def watch_managed(
        self, plural: str, namespace: str, resource_version: str, timeout: int, read_timeout: float
    ) -> Iterator[dict[str, Any]]:
        """The watch events of the pods or services the operator manages after `resource_version`,
        bookmarks included, each as parsed JSON, until the API server ends the watch after `timeout`
        seconds. `read_timeout`: the longest silence before the connection is taken for dead."""
        query = [("labelSelector", MANAGED_BY), ("watch", "true"), ("resourceVersion", resource_version),
                 ("allowWatchBookmarks", "true"), ("timeoutSeconds", str(timeout))]
        response = self._request(
            "watch", plural,
            lambda: self._send("GET", _path(CORE, plural, namespace), query=query, timeout=(30.0, read_timeout)),
        )
        stream: urllib3.BaseHTTPResponse = response.response
        try:
            pending = b""
            for chunk in stream.stream(amt=None, decode_content=True):
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    if line.strip():
                        yield json.loads(line)
        finally:
            # Closed rather than pooled: a watch left early has unread data on its connection.
            stream.close()
            stream.release_conn()

    def list_children(self, namespace: str, job: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The job's pods and services, found by label (owner references are checked by the caller)."""
        selector = f"{MANAGED_BY},{contract.JOB_NAME_LABEL}={job}"
        query = [("labelSelector", selector)]
        pods = self._request("list", "pods", lambda: self._call("GET", _path(CORE, "pods", namespace), query=query))
        services = self._request(
            "list", "services", lambda: self._call("GET", _path(CORE, "services", namespace), query=query)
        )
        return list(pods["items"]), list(services["items"])

    def create(self, namespace: str, obj: dict[str, Any]) -> dict[str, Any] | None:
        """Creates `obj` unless it exists; returns the created object, None when it existed."""
        kind = obj["kind"]
        if kind not in _CREATED:
            raise ValueError(f"the operator does not create {kind} objects")
        group_version, plural = _CREATED[kind]
        created: dict[str, Any] | None = self._request_or_none(
            "create", plural, lambda: self._call("POST", _path(group_version, plural, namespace), obj), done=(409,)
        )
        return created

    def serves(self, info: ApiInfo) -> bool:
        """Whether the API server serves `info`'s resource (discovery of its group version); a
        group version it does not serve answers 404."""
        found = self._request_or_none(
            "get", info.api_version,
            lambda: self._call("GET", f"/apis/{info.api_version}"), done=(404,),
        )
        return found is not None and any(r.get("name") == info.plural for r in found.get("resources") or [])

    def dry_run_pod(self, namespace: str, pod: dict[str, Any]) -> None:
        """Asks the API server to validate `pod` without creating it (dryRun=All); raises its refusal."""
        self._request(
            "create", "pods",
            lambda: self._call("POST", _path(CORE, "pods", namespace), pod, query=[("dryRun", "All")]),
            done=(400, 403, 422),
        )

    def delete_pod(self, namespace: str, name: str) -> None:
        self._request_or_none(
            "delete", "pods", lambda: self._call("DELETE", _path(CORE, "pods", namespace, name)), done=(404,)
        )

    def delete_job(self, namespace: str, name: str, uid: str) -> None:
        """Deletes the job itself (TTL after finish); children follow by garbage collection. 409:
        the uid precondition failed, so a new job of the same name is left alone."""
        body = {"preconditions": {"uid": uid}, "propagationPolicy": "Background"}
        self._request_or_none(
            "delete", JOB.plural,
            lambda: self._call("DELETE", _custom(JOB, namespace, name), body),
            done=(404, 409),
        )

    def patch_status(
        self, namespace: str, name: str, resource_version: str, status: dict[str, Any]
    ) -> dict[str, Any] | None:
        """Merge-patches the operator's status fields, guarded by resourceVersion so a stale
        reconcile can never overwrite a newer decision; returns the job as written."""
        body = {"metadata": {"resourceVersion": resource_version}, "status": status}
        try:
            return self._request_or_none(
                "patch", f"{JOB.plural}/status",
                lambda: self._call("PATCH", _custom(JOB, namespace, name) + "/status", body, content_type=MERGE_PATCH),
                done=(404,),
            )
        except ApiException as exc:
            if exc.status == 409:
                raise Conflict(f"{namespace}/{name} changed during reconcile") from exc
            raise

    def get_lease(self, namespace: str, name: str, timeout: float) -> dict[str, Any] | None:
        found = self._request_or_none(
            "get", "leases",
            lambda: self._call("GET", _path(LEASES, "leases", namespace, name), timeout=timeout), done=(404,),
        )
        return found

    def create_lease(self, namespace: str, name: str, spec: dict[str, Any], timeout: float) -> dict[str, Any] | None:
        """None when another replica created it first."""
        body = {"metadata": {"name": name, "namespace": namespace}, "spec": spec}
        created = self._request_or_none(
            "create", "leases",
            lambda: self._call("POST", _path(LEASES, "leases", namespace), body, timeout=timeout), done=(409,),
        )
        return created

    def update_lease(
        self, namespace: str, name: str, resource_version: str, spec: dict[str, Any], timeout: float
    ) -> dict[str, Any]:
        """Replaces the Lease's spec only if nobody wrote it since `resource_version` was read;
        Conflict otherwise (another replica renewed or took it)."""
        body = {"metadata": {"name": name, "namespace": namespace, "resourceVersion": resource_version}, "spec": spec}
        try:
            replaced = self._request(
                "update", "leases",
                lambda: self._call("PUT", _path(LEASES, "leases", namespace, name), body, timeout=timeout),
                done=(409,),
            )
        except ApiException as exc:
            if exc.status == 409:
                raise Conflict(f"Lease {namespace}/{name} changed meanwhile") from exc
            raise
        return dict(replaced)

    def post_event(self, obj: dict[str, Any], type_: str, reason: str, message: str) -> None:
        """On any kubetrain object: a TrainingJob, Model or TrainingSchedule."""
        meta = obj["metadata"]
        now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        body = {
            "metadata": {"name": f"{meta['name']}.{uuid.uuid4().hex[:16]}", "namespace": meta["namespace"]},
            "involvedObject": {
                "apiVersion": contract.API_VERSION,
                "kind": obj.get("kind", JOB.kind),
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
            events = _path(CORE, "events", meta["namespace"])
            self._request("create", "events", lambda: self._call("POST", events, body))
        except ApiException as exc:
            if namespace_terminating(exc):
                log.debug("event %s for %s/%s dropped: its namespace is being deleted", reason, meta["namespace"],
                          meta["name"])
                return
            log.warning("event %s for %s/%s not recorded: %s", reason, meta["namespace"], meta["name"], exc.reason)
        except urllib3.exceptions.HTTPError as exc:
            log.warning("event %s for %s/%s not recorded: %s", reason, meta["namespace"], meta["name"], exc)


def api_message(exc: ApiException) -> str:
    """The API server's own words for a refusal (its Status message), else the HTTP reason."""
    try:
        return str(json.loads(exc.body or "")["message"])
    except (TypeError, ValueError, KeyError):
        return str(exc.reason)


def namespace_terminating(exc: ApiException) -> bool:
    """The API server's refusal of new objects in a namespace being deleted: a 403 that is no
    permission problem (the namespace, and the object the event was about, are going away)."""
    return exc.status == 403 and "NamespaceTerminating" in (exc.body or "")
