"""What the operator's watches have delivered: the jobs and their pods and services, so a
reconcile reads memory instead of making three API requests (bench/README.md: those reads were
three quarters of all requests).

Sound because the planner is level-triggered and idempotent, and every write is guarded:
- the pods and services come from the operator's own list-and-watch of them
  (controller/informer.py); once its listing of a scope has arrived, a job with nothing in the
  cache has no children, with no request made to say so;
- a job, or a job's children before that listing, never seen are read from the API once, then
  kept current by watch events;
- our own writes update the cache from their responses, so a reconcile never plans from
  something older than what it wrote, but never over what the watch delivered first and is
  newer (a created child already seen, a job at a later generation);
- a status write from a stale job fails on its resourceVersion; the job is then re-read.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from kubetrain.api.contract import JOB_NAME_LABEL
from kubetrain.api.status import Phase
from kubetrain.controller.kube import Kube

Key = tuple[str, str]


class ClusterCache:
    def __init__(self, kube: Kube) -> None:
        self.kube = kube
        self._jobs: dict[Key, dict[str, Any]] = {}
        self._pods: dict[Key, dict[str, dict[str, Any]]] = {}
        self._services: dict[Key, dict[str, dict[str, Any]]] = {}
        # Events of children not loaded yet, counted per job: a listing that such an event
        # overtook may be older than the event, so it is used once and not kept (the event's
        # wake-up lists again).
        self._unloaded_events: dict[Key, int] = {}
        # (kind, namespace or None for the cluster) of each informer listing that has arrived, and
        # of each in flight with the objects (namespace, name) written while it is.
        self._synced: set[tuple[str, str | None]] = set()
        self._listings: dict[tuple[str, str | None], set[Key]] = {}
        self._lock = threading.Lock()

    # -- fed by the watches ---------------------------------------------------------------------
    def job_event(self, event_type: str | None, body: dict[str, Any], written: bool = False) -> bool:
        """Keeps the event's job; False when the cache already had this very version (the echo
        of our own status write, whose response the cache took): nothing to reconcile.
        `written`: `body` is the answer to the operator's own status write, which the watch may
        have overtaken with a spec edit: a kept job of the same uid and a later generation stays
        (the edit's wake-up must plan from the edit)."""
        key = (body["metadata"]["namespace"], body["metadata"]["name"])
        body = _slim(body)
        with self._lock:
            if event_type == "DELETED":
                self._jobs.pop(key, None)
                self._pods.pop(key, None)
                self._services.pop(key, None)
                self._unloaded_events.pop(key, None)
                return True
            kept = self._jobs.get(key)
            if written and kept is not None and _later_generation(kept, body):
                return False
            known = _same_version(kept, body)
            self._jobs[key] = body
            return not known

    def child_event(
        self, event_type: str | None, kind: str, body: dict[str, Any], created: bool = False
    ) -> bool:
        """Keeps the event's pod or service; False when it brings nothing new (the echo of our
        own create). `created`: `body` is the answer to the operator's own create, which the watch
        may have overtaken: a kept object of the same uid is then at least as new (a pod's
        Running, delivered between the create and its answer, must not be undone), and stays."""
        meta = body["metadata"]
        key = job_key(body)
        if key is None:
            return False
        body = _child(kind, body)
        with self._lock:
            for (listed_kind, scope), written in self._listings.items():
                if listed_kind == kind and scope in (None, key[0]):
                    written.add((key[0], meta["name"]))
            store = self._store(kind)
            children = store.get(key)
            covered = self._covered(kind, key[0])
            if children is None and not covered:
                self._unloaded_events[key] = self._unloaded_events.get(key, 0) + 1
                return True  # not loaded yet: the first read lists them from the API
            if event_type == "DELETED":
                if children is not None:
                    children.pop(meta["name"], None)
                    if not children and covered:
                        del store[key]  # nothing kept for a job without children
                return True
            children = store.setdefault(key, {})
            kept = children.get(meta["name"])
            if created and kept is not None and kept["metadata"].get("uid") == meta.get("uid"):
                return False
            known = _same_version(kept, body)
            children[meta["name"]] = body
            return not known

    # -- fed by the children's informers (controller/informer.py) -----------------------------
    def listing_started(self, kind: str, namespace: str | None) -> None:
        """From now until `listed`, the objects of `kind` in the scope that the operator's own
        writes or other events touch are remembered: what the cache then has of them is at
        least as new as the listing."""
        with self._lock:
            self._listings[(kind, namespace)] = set()

    def listed(self, kind: str, namespace: str | None, items: list[dict[str, Any]]) -> set[Key]:
        """What the cache holds of `kind` in the scope (a namespace, or None: the cluster) becomes
        the listing, but for the objects touched while it was in flight; from now on a job with
        nothing kept has no children of that kind. Returns the jobs whose children changed."""
        fresh: dict[Key, dict[str, dict[str, Any]]] = {}
        for item in items:
            key = job_key(item)
            if key is not None:
                fresh.setdefault(key, {})[item["metadata"]["name"]] = _child(kind, item)
        changed: set[Key] = set()
        with self._lock:
            written = self._listings.pop((kind, namespace), set())
            store = self._store(kind)
            for key in {k for k in store if namespace in (None, k[0])} | set(fresh):
                kept = store.get(key) or {}
                children = fresh.get(key, {})
                for name in {n for n in kept.keys() | children.keys() if (key[0], n) in written}:
                    if name in kept:
                        children[name] = kept[name]
                    else:
                        children.pop(name, None)
                if _versions(kept) != _versions(children):
                    changed.add(key)
                if children:
                    store[key] = children
                else:
                    store.pop(key, None)
            self._synced.add((kind, namespace))
        return changed

    def _store(self, kind: str) -> dict[Key, dict[str, dict[str, Any]]]:
        return self._pods if kind == "Pod" else self._services

    def _covered(self, kind: str, namespace: str) -> bool:
        """Whether an informer's listing of `kind` in `namespace` (or in the cluster) has arrived."""
        return (kind, None) in self._synced or (kind, namespace) in self._synced

    # -- read by the reconciler -----------------------------------------------------------------
    def get_job(self, namespace: str, name: str) -> dict[str, Any] | None:
        key = (namespace, name)
        with self._lock:
            job = self._jobs.get(key)
        if job is None:
            return self.refresh_job(namespace, name)
        return job

    def refresh_job(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The job from the API, unless a watch event delivered it while the read was in flight
        (the event is at least as new)."""
        key = (namespace, name)
        with self._lock:
            before = self._jobs.get(key)
        job = self.kube.get_job(namespace, name)
        job = _slim(job) if job is not None else None
        with self._lock:
            current = self._jobs.get(key)
            if current is not before:
                return current
            if job is not None:
                self._jobs[key] = job
        return job

    def list_children(self, namespace: str, job: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        key = (namespace, job)
        with self._lock:
            pods, services = self._pods.get(key), self._services.get(key)
            if pods is None and self._covered("Pod", namespace):
                pods = {}
            if services is None and self._covered("Service", namespace):
                services = {}
            if pods is not None and services is not None:
                return list(pods.values()), list(services.values())
            events_before = self._unloaded_events.get(key, 0)
        listed_pods, listed_services = self.kube.list_children(namespace, job)
        listed_pods = [_child("Pod", p) for p in listed_pods]
        listed_services = [_child("Service", s) for s in listed_services]
        with self._lock:
            # Kept unless an event overtook the listing; never over what an informer's listing
            # put there meanwhile (its watch keeps that current).
            if self._unloaded_events.get(key, 0) == events_before:
                for kind, listed in (("Pod", listed_pods), ("Service", listed_services)):
                    if not self._covered(kind, namespace):
                        self._store(kind)[key] = {c["metadata"]["name"]: c for c in listed}
                self._unloaded_events.pop(key, None)
        return listed_pods, listed_services

    def jobs(self) -> list[dict[str, Any]]:
        """Every job the watches delivered (for the metrics: read, never modified)."""
        with self._lock:
            return list(self._jobs.values())

    def in_phase(self, phase: Phase) -> list[tuple[str, str]]:
        """Namespace and name of every job the watches delivered in `phase`."""
        with self._lock:
            return sorted(key for key, job in self._jobs.items() if (job.get("status") or {}).get("phase") == phase)

    # -- our own writes -------------------------------------------------------------------------
    def wrote(self, body: dict[str, Any] | None) -> None:
        """A created child or the job after a status write, as the API server returned it."""
        if body is None:
            return
        if body["kind"] == "TrainingJob":
            self.job_event("MODIFIED", body, written=True)
        elif body["kind"] in ("Pod", "Service"):
            self.child_event("MODIFIED", body["kind"], body, created=True)

    def forget(self, namespace: str, name: str) -> None:
        self.job_event("DELETED", {"metadata": {"namespace": namespace, "name": name}})


class WatchedList:
    """A cluster-wide list the operator also watches (the DataResidencyPolicies): listed on first
    use and again after each change the watch reports, instead of once per reconcile.

    A list that was in flight when a change arrived is used by its caller but not kept, so the
    next reader lists again and sees the change; the change's event also wakes every job."""

    def __init__(self, lister: Callable[[], list[dict[str, Any]]]) -> None:
        self._lister = lister
        self._items: list[dict[str, Any]] | None = None
        self._generation = 0
        self._lock = threading.Lock()

    def changed(self) -> None:
        with self._lock:
            self._items = None
            self._generation += 1

    def get(self) -> list[dict[str, Any]]:
        with self._lock:
            if self._items is not None:
                return self._items
            generation = self._generation
        items = [_slim(item) for item in self._lister()]
        with self._lock:
            if generation == self._generation:
                self._items = items
        return items


def job_key(child: dict[str, Any]) -> Key | None:
    """(namespace, job) of a pod or service by its job-name label; None for one of no job."""
    meta = child["metadata"]
    job = (meta.get("labels") or {}).get(JOB_NAME_LABEL)
    return (meta["namespace"], job) if job else None


def _later_generation(kept: dict[str, Any], body: dict[str, Any]) -> bool:
    """Whether `kept` is the same object as `body` (uid) at a later spec (generation)."""
    meta, other = kept["metadata"], body["metadata"]
    return bool(meta.get("uid") == other.get("uid") and (meta.get("generation") or 0) > (other.get("generation") or 0))


def _versions(children: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {name: body["metadata"].get("resourceVersion") for name, body in children.items()}


def _same_version(kept: dict[str, Any] | None, body: dict[str, Any]) -> bool:
    return kept is not None and kept["metadata"].get("resourceVersion") == body["metadata"].get("resourceVersion")


def _child(kind: str, body: dict[str, Any]) -> dict[str, Any]:
    """What is kept of a pod or service: what a reconcile reads of a job's children, no more. That
    is a pod's metadata, node and status (plan/observed.py, controller/residency.py) and a
    service's metadata. A pod's spec (containers with their env, volumes, tolerations) is most of
    a cached pod, and nothing plans from it: the pods a job should have are rendered from the
    job's spec. A job of 4 workers' children take ~38 KiB of the operator's memory so, against
    ~115 KiB whole (bench/README.md)."""
    kept: dict[str, Any] = {k: body[k] for k in ("apiVersion", "kind") if k in body}
    kept["metadata"] = _slim(body)["metadata"]
    if kind == "Pod":
        node = (body.get("spec") or {}).get("nodeName")
        kept["spec"] = {"nodeName": node} if node else {}
        if "status" in body:
            kept["status"] = body["status"]
    return kept


def _slim(body: dict[str, Any]) -> dict[str, Any]:
    """Without metadata.managedFields: nothing plans from it, and it is often the largest part of
    an object (one entry per field manager), multiplied by every job, pod and service kept."""
    if "managedFields" not in body["metadata"]:
        return body
    return {**body, "metadata": {k: v for k, v in body["metadata"].items() if k != "managedFields"}}
