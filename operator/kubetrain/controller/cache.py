"""What the operator's watches have delivered: the jobs and their pods and services, so a
reconcile reads memory instead of making three API requests (bench/README.md: those reads were
three quarters of all requests).

Sound because the planner is level-triggered and idempotent, and every write is guarded:
- a job or job's children never seen (a cold start, before the watch's initial listing arrived)
  are read from the API once, then kept current by watch events;
- our own writes update the cache from their responses, so a reconcile never plans from
  something older than what it wrote;
- a status write from a stale job fails on its resourceVersion; the job is then re-read.
"""

from __future__ import annotations

import threading
from typing import Any

from kubetrain.kube import JOB_LABEL, Kube

Key = tuple[str, str]


class ClusterCache:
    def __init__(self, kube: Kube) -> None:
        self.kube = kube
        self._jobs: dict[Key, dict[str, Any]] = {}
        self._pods: dict[Key, dict[str, dict[str, Any]]] = {}
        self._services: dict[Key, dict[str, dict[str, Any]]] = {}
        self._lock = threading.Lock()

    # -- fed by the watches ---------------------------------------------------------------------
    def job_event(self, event_type: str | None, body: dict[str, Any]) -> None:
        key = (body["metadata"]["namespace"], body["metadata"]["name"])
        with self._lock:
            if event_type == "DELETED":
                self._jobs.pop(key, None)
                self._pods.pop(key, None)
                self._services.pop(key, None)
            else:
                self._jobs[key] = body

    def child_event(self, event_type: str | None, kind: str, body: dict[str, Any]) -> None:
        meta = body["metadata"]
        job = (meta.get("labels") or {}).get(JOB_LABEL)
        if not job:
            return
        key = (meta["namespace"], job)
        with self._lock:
            store = self._pods if kind == "Pod" else self._services
            children = store.get(key)
            if children is None:
                return  # not loaded yet: the first read lists them from the API
            if event_type == "DELETED":
                children.pop(meta["name"], None)
            else:
                children[meta["name"]] = body

    # -- read by the reconciler -----------------------------------------------------------------
    def get_job(self, namespace: str, name: str) -> dict[str, Any] | None:
        key = (namespace, name)
        with self._lock:
            job = self._jobs.get(key)
        if job is None:
            return self.refresh_job(namespace, name)
        return job

    def refresh_job(self, namespace: str, name: str) -> dict[str, Any] | None:
        job = self.kube.get_job(namespace, name)
        if job is not None:
            with self._lock:
                self._jobs[(namespace, name)] = job
        return job

    def list_children(self, namespace: str, job: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        key = (namespace, job)
        with self._lock:
            pods, services = self._pods.get(key), self._services.get(key)
            if pods is not None and services is not None:
                return list(pods.values()), list(services.values())
        listed_pods, listed_services = self.kube.list_children(namespace, job)
        with self._lock:
            self._pods[key] = {p["metadata"]["name"]: p for p in listed_pods}
            self._services[key] = {s["metadata"]["name"]: s for s in listed_services}
        return listed_pods, listed_services

    # -- our own writes -------------------------------------------------------------------------
    def wrote(self, body: dict[str, Any] | None) -> None:
        """A created child or the job after a status write, as the API server returned it."""
        if body is None:
            return
        if body["kind"] == "TrainingJob":
            self.job_event("MODIFIED", body)
        else:
            self.child_event("MODIFIED", body["kind"], body)

    def forget(self, namespace: str, name: str) -> None:
        self.job_event("DELETED", {"metadata": {"namespace": namespace, "name": name}})
