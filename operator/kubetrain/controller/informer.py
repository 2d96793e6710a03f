"""The pods and services the operator manages, listed and then watched by the operator itself
(client-go's reflector, in little) instead of through kopf.

No handler needs what kopf adds to a watch (its per-event bookkeeping, a Body and a Patch per
event, its diff base), and that was the largest share of kopf's CPU in the operator, with pods the
most frequent events (bench/README.md). Owning the list also tells the cache when it holds every
child in a scope, so a job's first reconcile needs no listing of its pods and services.

Per kind and scope (each watched namespace, or the whole cluster): list with the operator's label
selector, hand the listing to the cache, then watch from its resourceVersion, bookmarks on, each
watch ended by the API server after `timeout` seconds and resumed from the last version seen. A
version the API server no longer has (410 Gone) lists again; any other failure lists again after
a delay that doubles up to 30 s. Every replica runs these watches (a standby's cache stays warm);
the wake-ups they ask for wait while it is not the leader (controller.requeue).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import urllib3
from kubernetes.client.exceptions import ApiException

from kubetrain.controller.backoff import Backoff
from kubetrain.controller.cache import ClusterCache, job_key
from kubetrain.controller.kube import Kube

log = logging.getLogger("kubetrain.informer")

GONE = 410
RETRY = (1.0, 30.0, 0.2)
PLURALS = {"Pod": "pods", "Service": "services"}


class WatchFailed(RuntimeError):
    """The API server ended a watch with an error other than 410 Gone."""


# Failures a watch meets in normal life (the API server restarting, a connection dropped, an
# error event): said in one line; anything else also with its traceback.
FORESEEN = (ApiException, urllib3.exceptions.HTTPError, OSError, ValueError, WatchFailed)


class ChildInformer:
    def __init__(
        self, kube: Kube, cache: ClusterCache, wake: Callable[[str, str], None], kind: str, namespace: str | None,
        timeout: int, read_timeout: float,
    ) -> None:
        """`kind`: Pod or Service; `namespace`: None for the whole cluster. `wake(namespace, job)`
        asks for a reconcile of a job whose children changed."""
        self.kube = kube
        self.cache = cache
        self.wake = wake
        self.kind = kind
        self.namespace = namespace
        self.timeout = timeout
        self.read_timeout = read_timeout
        self._stopped = threading.Event()
        self._retries = Backoff(*RETRY)
        self._thread = threading.Thread(
            target=self._run, name=f"watch-{PLURALS[kind]}-{namespace or 'all'}", daemon=True
        )

    @property
    def scope(self) -> str:
        return f"{PLURALS[self.kind]} in {self.namespace or 'every namespace'}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """The thread ends once its current watch does (it is a daemon: the process need not wait)."""
        self._stopped.set()

    def _run(self) -> None:
        key = (self.kind, self.namespace or "")
        while not self._stopped.is_set():
            try:
                self.list_and_watch()
                self._retries.succeeded(key)
            except Exception as error:  # whatever it is: without this thread the operator sees no pod change
                delay = self._retries.failed(key)
                foreseen = isinstance(error, FORESEEN)
                log.log(logging.WARNING if foreseen else logging.ERROR,
                        "watching %s failed (%s: %s); listing again in %.1fs",
                        self.scope, type(error).__name__, error, delay, exc_info=not foreseen)
                self._stopped.wait(delay)

    def list_and_watch(self) -> None:
        """One listing, then watches from it until one says its version is gone or the informer stops."""
        self.cache.listing_started(self.kind, self.namespace)
        items, listed_version = self.kube.list_managed(PLURALS[self.kind], self.namespace or "")
        for namespace, job in sorted(self.cache.listed(self.kind, self.namespace, items)):
            self.wake(namespace, job)
        log.info("listed %d %s", len(items), self.scope)
        version: str | None = listed_version
        while version is not None and not self._stopped.is_set():
            version = self.watch(version)

    def watch(self, version: str) -> str | None:
        """One watch from `version`: the last version it saw, or None when `version` is gone."""
        try:
            events = self.kube.watch_managed(
                PLURALS[self.kind], self.namespace or "", version, self.timeout, self.read_timeout
            )
            for event in events:
                seen = self.handle(event)
                if seen is None:
                    return None
                version = seen
                if self._stopped.is_set():
                    break
        except ApiException as exc:
            if exc.status == GONE:
                log.info("%s: version %s is gone; listing again", self.scope, version)
                return None
            raise
        return version

    def handle(self, event: dict[str, Any]) -> str | None:
        """Feeds one watch event to the cache and wakes its job; returns the version it brings,
        None for 410 Gone."""
        kind, body = event.get("type"), event.get("object") or {}
        if kind == "ERROR":
            if body.get("code") == GONE:
                log.info("%s: %s; listing again", self.scope, body.get("message"))
                return None
            raise WatchFailed(f"{body.get('code')} {body.get('reason')}: {body.get('message')}")
        if kind != "BOOKMARK":
            job = job_key(body)
            if job is not None and self.cache.child_event(kind, self.kind, body):
                self.wake(*job)
        return str(body["metadata"]["resourceVersion"])


def start_informers(
    kube: Kube, cache: ClusterCache, wake: Callable[[str, str], None], namespaces: list[str],
    timeout: int, read_timeout: float,
) -> list[ChildInformer]:
    """One informer per kind and watched namespace (the whole cluster when `namespaces` is empty)."""
    scopes: list[str | None] = list(namespaces) or [None]
    informers = [ChildInformer(kube, cache, wake, kind, scope, timeout, read_timeout)
                 for kind in PLURALS for scope in scopes]
    for informer in informers:
        informer.start()
    return informers
