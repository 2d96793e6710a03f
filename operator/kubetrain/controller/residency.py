"""Fetching the facts a residency verdict needs, for the reconcile and the webhook."""

from __future__ import annotations

import threading
import time
from typing import Any

from kubetrain.api.job import TrainingJob
from kubetrain.api.nodepools import REGION_LABEL
from kubetrain.controller.cache import WatchedList
from kubetrain.controller.kube import Kube
from kubetrain.controller.shared_reads import SharedReads
from kubetrain.policy.residency import DefaultResidency, ResidencyFacts
from kubetrain.policy.residency.evaluate import PodPlacement, claims_referenced

# How long a started job's reconciles reuse a namespace's labels. No watch keeps namespaces
# (the operator's RBAC may not list them): every job whose pods exist is re-judged at least every
# plan.residency.RECHECK_SECONDS, so a namespace relabelled under a stricter policy is noticed
# by its running jobs within the sum of the two, or at once on a policy change.
NAMESPACE_LABELS_TTL_SECONDS = 30.0
# How long a node's region label is reused. A node name may come back as a new node (a cloud
# reusing a reclaimed spot node's name), in another region, so the label is read again after this.
NODE_REGION_TTL_SECONDS = 300.0


def occupying(pods: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(pod, node) of the pods that hold a node now: scheduled, not finished, not being deleted."""
    return [
        (pod["metadata"]["name"], node)
        for pod in pods
        if (node := (pod.get("spec") or {}).get("nodeName"))
        and not pod["metadata"].get("deletionTimestamp")
        and (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
    ]


def fetch_residency(
    kube: Kube, job: TrainingJob | None, namespace: str, default: DefaultResidency,
    policies: list[dict[str, Any]] | None = None, namespace_labels: dict[str, str] | None = None,
    placements: list[PodPlacement] | None = None,
) -> ResidencyFacts:
    """What is not given is read from the API: the admission webhook reads everything fresh, as
    it must judge by a policy or label set a moment ago."""
    claims = claims_referenced(job) if job is not None else set()
    return ResidencyFacts(
        namespace=namespace,
        namespace_labels=kube.namespace_labels(namespace) if namespace_labels is None else namespace_labels,
        policies=kube.list_policies() if policies is None else policies,
        storage_classes={claim: kube.claim_storage_class(namespace, claim) for claim in sorted(claims)},
        default=default,
        placements=placements or [],
    )


class ResidencyReader:
    """The reconcile's residency facts. Before a job's pods first exist everything is read fresh
    (a job must not start under a policy created a moment before it), in reads the reconciles
    that begin together share (controller/shared_reads.py); a started job is judged again by the
    watch-fed policy list and its namespace's labels of the last minute, which saves two requests
    on each of its reconciles. A policy change drops both."""

    def __init__(self, kube: Kube, default: DefaultResidency, shared: SharedReads) -> None:
        self.kube = kube
        self.default = default
        self.shared = shared
        self.policies = WatchedList(kube.list_policies)
        self._labels: dict[str, tuple[float, dict[str, str]]] = {}
        self._regions: dict[str, tuple[float, str | None]] = {}
        self._lock = threading.Lock()

    def changed(self) -> None:
        self.policies.changed()
        with self._lock:
            self._labels.clear()

    def facts(
        self, job: TrainingJob | None, namespace: str, fresh: bool, began: float,
        pods: list[dict[str, Any]] | None = None,
    ) -> ResidencyFacts:
        """`began`: when the reconcile began (time.monotonic()), which a fresh read must follow;
        `pods`: the job's pods, judged where they were scheduled (their nodes' regions)."""
        if fresh:
            labels = self.shared.read(("namespace-labels", namespace), began, lambda: self._read_labels(namespace))
            policies = self.shared.read("residency-policies", began, self.kube.list_policies)
        else:
            labels, policies = self.namespace_labels(namespace), self.policies.get()
        return fetch_residency(self.kube, job, namespace, self.default, policies, labels, self._placements(pods or []))

    def namespace_labels(self, namespace: str) -> dict[str, str]:
        """The namespace's labels, read at most every NAMESPACE_LABELS_TTL_SECONDS."""
        labels = self._recent_labels(namespace)
        return self._read_labels(namespace) if labels is None else labels

    def _read_labels(self, namespace: str) -> dict[str, str]:
        labels = self.kube.namespace_labels(namespace)
        with self._lock:
            self._labels[namespace] = (time.monotonic(), labels)
        return labels

    def _placements(self, pods: list[dict[str, Any]]) -> list[PodPlacement]:
        """A pod whose node is gone (a reclaimed spot node) is not judged: it no longer runs
        anywhere, and the planner sees it fail or vanish. A node that exists without a region
        label is judged (region None), and refused."""
        placements = []
        for pod, node in occupying(pods):
            exists, region = self._node_region(node)
            if exists:
                placements.append(PodPlacement(pod=pod, node=node, region=region))
        return placements

    def _node_region(self, node: str) -> tuple[bool, str | None]:
        """(whether the node exists, its region label); an existing node's is kept for
        NODE_REGION_TTL_SECONDS."""
        with self._lock:
            known = self._regions.get(node)
        if known is not None and time.monotonic() - known[0] <= NODE_REGION_TTL_SECONDS:
            return True, known[1]
        labels = self.kube.node_labels(node)
        with self._lock:
            if labels is None:
                self._regions.pop(node, None)
                return False, None
            self._regions[node] = (time.monotonic(), labels.get(REGION_LABEL))
        return True, labels.get(REGION_LABEL)

    def _recent_labels(self, namespace: str) -> dict[str, str] | None:
        with self._lock:
            read = self._labels.get(namespace)
            if read is None:
                return None
            if time.monotonic() - read[0] > NAMESPACE_LABELS_TTL_SECONDS:
                del self._labels[namespace]
                return None
            return read[1]
