"""What the cache keeps of watch events (no API involved: every read here is served from events)."""

from __future__ import annotations

from typing import Any

from kubetrain.controller.cache import ClusterCache, WatchedList
from kubetrain.controller.residency import occupying
from kubetrain.plan.observed import ObservedPod


def job(name: str, phase: str | None = None) -> dict[str, Any]:
    return {
        "kind": "TrainingJob",
        "metadata": {
            "namespace": "ns", "name": name, "uid": f"uid-{name}", "resourceVersion": "7",
            "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:spec": {}}}],
        },
        "spec": {"workers": 2},
        "status": {"phase": phase} if phase else {},
    }


def test_jobs_are_kept_without_managed_fields_and_the_event_body_is_untouched() -> None:
    cache = ClusterCache(kube=None)  # type: ignore[arg-type]  # never asked: the job came by event
    body = job("a")
    cache.job_event("ADDED", body)
    kept = cache.get_job("ns", "a")
    assert kept is not None and "managedFields" not in kept["metadata"]
    assert kept["metadata"]["resourceVersion"] == "7" and kept["spec"] == {"workers": 2}
    assert "managedFields" in body["metadata"], "the caller's object is not modified"


def test_jobs_and_deletion() -> None:
    cache = ClusterCache(kube=None)  # type: ignore[arg-type]
    cache.job_event("ADDED", job("a", "Running"))
    cache.job_event("ADDED", job("b"))
    assert sorted(j["metadata"]["name"] for j in cache.jobs()) == ["a", "b"]
    cache.job_event("DELETED", job("a"))
    assert [j["metadata"]["name"] for j in cache.jobs()] == ["b"]



def test_the_echo_of_a_version_already_kept_is_nothing_new() -> None:
    cache = ClusterCache(kube=None)  # type: ignore[arg-type]
    assert cache.job_event("ADDED", job("a")), "first sight"
    written = {**job("a", "Running"), "metadata": {**job("a")["metadata"], "resourceVersion": "8"}}
    cache.wrote(written)  # the response of our own status write
    assert not cache.job_event("MODIFIED", written), "its watch echo"
    newer = {**written, "metadata": {**written["metadata"], "resourceVersion": "9"}}
    assert cache.job_event("MODIFIED", newer), "someone else's change"
    assert cache.job_event("DELETED", newer)


def test_watched_list_is_listed_once_until_a_change() -> None:
    calls: list[int] = []

    def lister() -> list[dict[str, Any]]:
        calls.append(1)
        return [{"metadata": {"name": f"p{len(calls)}", "managedFields": []}}]

    policies = WatchedList(lister)
    assert policies.get() == [{"metadata": {"name": "p1"}}]
    assert policies.get() == [{"metadata": {"name": "p1"}}] and len(calls) == 1
    policies.changed()
    assert policies.get() == [{"metadata": {"name": "p2"}}] and len(calls) == 2


def test_a_list_overtaken_by_a_change_is_not_kept() -> None:
    policies: WatchedList

    def lister() -> list[dict[str, Any]]:
        if not listed:
            policies.changed()  # the watch reports a change while this list is in flight
        listed.append(1)
        return [{"metadata": {"name": f"p{len(listed)}"}}]

    listed: list[int] = []
    policies = WatchedList(lister)
    assert policies.get() == [{"metadata": {"name": "p1"}}], "the caller still gets its answer"
    assert policies.get() == [{"metadata": {"name": "p2"}}], "but the next reader lists again"
    assert policies.get() == [{"metadata": {"name": "p2"}}] and len(listed) == 2


class RacingReads:
    """Stands in for the API reads only; each read lets a watch event overtake it."""

    def __init__(self, cache: ClusterCache, during_read: dict[str, Any]) -> None:
        self.cache, self.during_read, self.reads = cache, during_read, 0

    def list_children(self, namespace: str, job: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        self.reads += 1
        stale = {**self.during_read, "status": {"phase": "Running"}}
        if self.reads == 1:
            self.cache.child_event("MODIFIED", "Pod", self.during_read)
        return [stale if self.reads == 1 else self.during_read], []

    def get_job(self, namespace: str, name: str) -> dict[str, Any]:
        self.reads += 1
        self.cache.job_event("MODIFIED", self.during_read)
        return job(name, "Running")


def test_a_listing_overtaken_by_an_event_is_not_kept() -> None:
    pod = {"kind": "Pod", "metadata": {"namespace": "ns", "name": "a-worker-0", "resourceVersion": "9",
                                      "labels": {"kubetrain.io/job-name": "a"}}, "status": {"phase": "Succeeded"}}
    cache = ClusterCache(kube=None)  # type: ignore[arg-type]
    reads = RacingReads(cache, pod)
    cache.kube = reads  # type: ignore[assignment]
    cache.list_children("ns", "a")
    pods, _ = cache.list_children("ns", "a")
    assert reads.reads == 2, "the overtaken listing was not kept"
    assert pods[0]["status"]["phase"] == "Succeeded"
    cache.list_children("ns", "a")
    assert reads.reads == 2, "the second listing was kept"


def test_a_read_overtaken_by_an_event_answers_the_event() -> None:
    cache = ClusterCache(kube=None)  # type: ignore[arg-type]
    newer = job("a", "Succeeded")
    cache.kube = RacingReads(cache, newer)  # type: ignore[assignment]
    got = cache.get_job("ns", "a")
    assert got is not None and got["status"]["phase"] == "Succeeded"


def pod(job_name: str, name: str, version: str, namespace: str = "ns") -> dict[str, Any]:
    return {"kind": "Pod", "metadata": {"namespace": namespace, "name": name, "resourceVersion": version,
                                        "labels": {"kubetrain.io/job-name": job_name}}}


def names(cache: ClusterCache, namespace: str, job_name: str) -> list[str]:
    pods, _ = cache.list_children(namespace, job_name)
    return sorted(p["metadata"]["name"] for p in pods)


def test_once_both_listings_arrived_a_job_without_children_needs_no_read() -> None:
    cache = ClusterCache(kube=None)  # type: ignore[arg-type]  # any read would fail
    for kind in ("Pod", "Service"):
        cache.listing_started(kind, None)
    assert cache.listed("Pod", None, [pod("a", "a-worker-0", "3"), pod("b", "b-worker-0", "4", "other")]) == {
        ("ns", "a"), ("other", "b")}
    assert cache.listed("Service", None, []) == set()
    assert names(cache, "ns", "a") == ["a-worker-0"]
    assert names(cache, "ns", "new") == [], "a job never seen has no children, without a read"
    assert cache.child_event("ADDED", "Pod", pod("new", "new-worker-0", "5"))
    assert names(cache, "ns", "new") == ["new-worker-0"]
    assert cache.child_event("DELETED", "Pod", pod("new", "new-worker-0", "6"))
    assert names(cache, "ns", "new") == []


def test_a_listing_of_one_namespace_covers_that_namespace_only() -> None:
    reads: list[str] = []

    class Reads:
        def list_children(self, namespace: str, job: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
            reads.append(f"{namespace}/{job}")
            return [], []

    cache = ClusterCache(kube=Reads())  # type: ignore[arg-type]
    for kind in ("Pod", "Service"):
        cache.listing_started(kind, "ns")
        cache.listed(kind, "ns", [])
    assert names(cache, "ns", "a") == [] and reads == []
    assert names(cache, "elsewhere", "a") == [] and reads == ["elsewhere/a"]


def test_a_relisting_replaces_what_changed_unseen_but_not_what_was_written_meanwhile() -> None:
    """After a watch lost its place (410 Gone): a pod deleted while no watch ran disappears, a
    pod the operator created while the listing was in flight stays."""
    cache = ClusterCache(kube=None)  # type: ignore[arg-type]
    cache.listing_started("Service", None)
    cache.listed("Service", None, [])
    cache.listing_started("Pod", None)
    cache.listed("Pod", None, [pod("a", "a-worker-0", "3"), pod("a", "a-worker-1", "3")])

    cache.listing_started("Pod", None)
    cache.wrote(pod("b", "b-worker-0", "10"))  # created while the listing is in flight
    changed = cache.listed("Pod", None, [pod("a", "a-worker-0", "3")])  # a-worker-1 went unseen

    assert changed == {("ns", "a")}, "only the job whose children changed is woken"
    assert names(cache, "ns", "a") == ["a-worker-0"]
    assert names(cache, "ns", "b") == ["b-worker-0"]


def test_an_informer_listing_is_not_overwritten_by_an_older_cold_read() -> None:
    cache = ClusterCache(kube=None)  # type: ignore[arg-type]

    class SlowRead:
        def list_children(self, namespace: str, job: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
            for kind in ("Pod", "Service"):  # the informers' listings arrive during this read
                cache.listing_started(kind, None)
                cache.listed(kind, None, [pod("a", "a-worker-0", "8")] if kind == "Pod" else [])
            return [], []

    cache.kube = SlowRead()  # type: ignore[assignment]
    assert names(cache, "ns", "a") == [], "the caller gets its own read"
    assert names(cache, "ns", "a") == ["a-worker-0"], "the cache keeps the informer's"


def test_the_answer_to_a_create_never_undoes_what_the_watch_delivered_first() -> None:
    """The watch can deliver a new pod, and its Running, before the create's answer reaches the
    cache: the answer (the pod as created) must not undo that, or a pod that then changes no
    more is planned from as Pending for ever."""
    cache = ClusterCache(kube=None)  # type: ignore[arg-type]
    for kind in ("Pod", "Service"):
        cache.listing_started(kind, None)
        cache.listed(kind, None, [])
    created = {**pod("a", "a-worker-0", "5"), "status": {"phase": "Pending"}}
    created["metadata"]["uid"] = "uid-1"
    running = {**created, "metadata": {**created["metadata"], "resourceVersion": "6"}, "status": {"phase": "Running"}}
    cache.child_event("ADDED", "Pod", created)
    cache.child_event("MODIFIED", "Pod", running)
    cache.wrote(created)
    [kept], _ = cache.list_children("ns", "a")
    assert kept["status"]["phase"] == "Running"

    # A pod of the same name from an earlier attempt is replaced by the new one.
    again = {**created, "metadata": {**created["metadata"], "uid": "uid-2", "resourceVersion": "9"}}
    cache.wrote(again)
    [kept], _ = cache.list_children("ns", "a")
    assert kept["metadata"]["uid"] == "uid-2"


def test_the_answer_to_a_status_write_never_undoes_a_spec_edit_the_watch_delivered_first() -> None:
    cache = ClusterCache(kube=None)  # type: ignore[arg-type]
    ours = {**job("a", "Running"), "metadata": {**job("a")["metadata"], "resourceVersion": "8", "generation": 1}}
    edited = {**ours, "metadata": {**ours["metadata"], "resourceVersion": "9", "generation": 2},
              "spec": {"workers": 2, "runPolicy": {"suspend": True}}}
    assert cache.job_event("MODIFIED", edited)
    cache.wrote(ours)
    kept = cache.get_job("ns", "a")
    assert kept is not None and kept["metadata"]["generation"] == 2 and kept["spec"]["runPolicy"]["suspend"]

    recreated = {**ours, "metadata": {**ours["metadata"], "uid": "uid-a-2", "resourceVersion": "12"}}
    cache.wrote(recreated)  # a job of the same name created anew: its own answer is kept
    kept = cache.get_job("ns", "a")
    assert kept is not None and kept["metadata"]["uid"] == "uid-a-2"


def full_pod(name: str) -> dict[str, Any]:
    """A pod as the API returns it: spec and all."""
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "namespace": "ns", "name": name, "uid": f"uid-{name}", "resourceVersion": "7",
            "labels": {"kubetrain.io/job-name": "a", "kubetrain.io/role": "worker", "kubetrain.io/replica-index": "0"},
            "annotations": {"kubetrain.io/attempt": "0"},
            "ownerReferences": [{"kind": "TrainingJob", "name": "a", "uid": "job-uid", "controller": True}],
            "managedFields": [{"manager": "kubetrain-operator"}],
        },
        "spec": {
            "nodeName": "gpu-0",
            "containers": [{"name": "trainer", "image": "trainer:1", "env": [{"name": "RANK", "value": "0"}] * 30}],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}],
            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        },
        "status": {
            "phase": "Failed", "reason": "Error", "message": "worker crashed",
            "conditions": [{"type": "PodScheduled", "status": "True"}, {"type": "Ready", "status": "False"}],
            "containerStatuses": [{
                "name": "trainer", "ready": False, "imageID": "trainer@sha256:0",
                "state": {"terminated": {"exitCode": 1, "reason": "Error", "message": "ValueError: nan loss"}},
            }],
        },
    }


def test_a_child_is_kept_with_what_a_reconcile_reads_of_it_and_no_more() -> None:
    """The planner's view of a pod (ObservedPod), its node for residency and its owner are the
    same from the kept pod as from the whole one; the pod's spec but its node is not kept."""
    cache = ClusterCache(kube=None)  # type: ignore[arg-type]
    cache.listing_started("Pod", None)
    cache.listed("Pod", None, [full_pod("a-worker-0")])
    cache.listing_started("Service", None)
    cache.listed("Service", None, [{"metadata": {"namespace": "ns", "name": "a", "labels": {
        "kubetrain.io/job-name": "a"}}, "spec": {"clusterIP": "None", "selector": {"x": "y"}}}])
    cache.child_event("ADDED", "Pod", full_pod("a-worker-1"))
    cache.wrote(full_pod("a-worker-2"))
    pods, [service] = cache.list_children("ns", "a")
    assert len(pods) == 3
    for kept in pods:
        whole = full_pod(kept["metadata"]["name"])
        assert ObservedPod.from_k8s(kept) == ObservedPod.from_k8s(whole)
        assert occupying([kept]) == occupying([whole])
        assert kept["metadata"]["ownerReferences"] == whole["metadata"]["ownerReferences"]
        assert kept["spec"] == {"nodeName": "gpu-0"} and "managedFields" not in kept["metadata"]
    assert service == {"metadata": {"namespace": "ns", "name": "a", "labels": {"kubetrain.io/job-name": "a"}}}
