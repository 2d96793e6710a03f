"""What the operator's own watch of its pods and services does with each event
(controller/informer.py): the API server here is only the events it would send."""

from __future__ import annotations

from typing import Any

import pytest

from kubetrain.controller.cache import ClusterCache
from kubetrain.controller.informer import ChildInformer, WatchFailed


def informer() -> tuple[ChildInformer, list[tuple[str, str]]]:
    woken: list[tuple[str, str]] = []
    cache = ClusterCache(kube=None)  # type: ignore[arg-type]
    for kind in ("Pod", "Service"):
        cache.listing_started(kind, None)
        cache.listed(kind, None, [])
    watch = ChildInformer(kube=None, cache=cache, wake=lambda ns, job: woken.append((ns, job)),  # type: ignore[arg-type]
                          kind="Pod", namespace=None, timeout=300, read_timeout=330)
    return watch, woken


def pod_event(kind: str, version: str, job: str | None = "a") -> dict[str, Any]:
    labels = {"kubetrain.io/job-name": job} if job else {}
    return {"type": kind, "object": {"kind": "Pod", "metadata": {
        "namespace": "ns", "name": "a-worker-0", "resourceVersion": version, "labels": labels}}}


def test_a_change_wakes_its_job_once_and_moves_the_version_on() -> None:
    watch, woken = informer()
    assert watch.handle(pod_event("ADDED", "5")) == "5"
    assert watch.handle(pod_event("MODIFIED", "5")) == "5"  # the same version again: nothing new
    assert watch.handle(pod_event("MODIFIED", "6")) == "6"
    assert woken == [("ns", "a"), ("ns", "a")]
    pods, _ = watch.cache.list_children("ns", "a")
    assert [p["metadata"]["resourceVersion"] for p in pods] == ["6"]


def test_a_bookmark_moves_the_version_on_and_wakes_nothing() -> None:
    watch, woken = informer()
    bookmark = {"type": "BOOKMARK", "object": {"kind": "Pod", "metadata": {"resourceVersion": "42"}}}
    assert watch.handle(bookmark) == "42" and woken == []


def test_a_pod_of_no_job_wakes_nothing() -> None:
    watch, woken = informer()
    assert watch.handle(pod_event("ADDED", "5", job=None)) == "5" and woken == []


def test_gone_asks_for_a_new_listing_and_other_errors_fail_the_watch() -> None:
    watch, _ = informer()
    gone = {"type": "ERROR", "object": {"kind": "Status", "code": 410, "reason": "Expired",
                                         "message": "too old resource version: 5 (90)"}}
    assert watch.handle(gone) is None
    failed = {"type": "ERROR", "object": {"kind": "Status", "code": 500, "reason": "InternalError", "message": "boom"}}
    with pytest.raises(WatchFailed, match="500 InternalError: boom"):
        watch.handle(failed)
