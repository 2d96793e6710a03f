"""Kueue, where installed: asked of discovery once, at start (install Kueue before the operator,
or restart the operator after), and the facts one reconcile of a labelled job plans from: its
Workload and the ResourceFlavors its admission names."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from kubetrain.api.job import TrainingJob
from kubetrain.api.kueue import RESOURCE_FLAVOR, WORKLOAD_PRIORITY_CLASS, Workload
from kubetrain.controller.kube import Kube
from kubetrain.policy.kueue import KueueFacts, flavor_names
from kubetrain.render.kueue import priority_class, workload_name

log = logging.getLogger("kubetrain.kueue")
# How stale a ResourceFlavor's nodeLabels and tolerations may be when pods are placed with them.
FLAVOR_TTL_SECONDS = 60.0


def kueue_served(kube: Kube) -> bool:
    """Whether kueue.x-k8s.io/v1beta2 Workloads are served; said once in the log either way."""
    info = Workload.api_info
    if kube.serves(info):
        log.info("the cluster serves %s/%s %s: jobs labelled kueue.x-k8s.io/queue-name wait for Kueue's admission",
                 info.group, info.version, info.plural)
        return True
    log.info("the cluster does not serve %s/%s %s (Kueue v0.17+ not installed): the kueue.x-k8s.io/queue-name "
             "label is ignored; see docs/kueue.md", info.group, info.version, info.plural)
    return False


class KueueReader:
    """The facts one reconcile of a labelled job plans from: its Workload (or, before it exists, the
    value of the WorkloadPriorityClass it names), and the ResourceFlavors its admission names.
    Flavours are shared by every job a ClusterQueue admits and rarely change, so each is read at
    most every FLAVOR_TTL_SECONDS rather than on every reconcile of every admitted job."""

    def __init__(self, kube: Kube) -> None:
        self.kube = kube
        self._flavors: dict[str, tuple[float, dict[str, Any] | None]] = {}
        self._lock = threading.Lock()

    def facts(self, namespace: str, job: TrainingJob) -> KueueFacts:
        workload = self.kube.get_custom(Workload.api_info, namespace, workload_name(job.metadata.name))
        if workload is None:
            named = priority_class(job)
            found = self.kube.get_cluster_custom(WORKLOAD_PRIORITY_CLASS, named) if named else None
            return KueueFacts(priority=int(found["value"]) if found is not None else None)
        flavors = {name: spec for name in sorted(flavor_names(workload)) if (spec := self._flavor(name)) is not None}
        return KueueFacts(workload=workload, flavors=flavors)

    def _flavor(self, name: str) -> dict[str, Any] | None:
        """The flavour's spec, None while it does not exist (not remembered: it may be created)."""
        with self._lock:
            known = self._flavors.get(name)
        if known is not None and time.monotonic() - known[0] <= FLAVOR_TTL_SECONDS:
            return known[1]
        spec = (self.kube.get_cluster_custom(RESOURCE_FLAVOR, name) or {}).get("spec")
        with self._lock:
            if spec is None:
                self._flavors.pop(name, None)
            else:
                self._flavors[name] = (time.monotonic(), spec)
        return spec
