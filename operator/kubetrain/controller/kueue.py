"""Kueue, where installed: asked of discovery once, at start (install Kueue before the operator,
or restart the operator after), and the facts one reconcile of a labelled job plans from: its
Workload and the ResourceFlavors its admission names."""

from __future__ import annotations

import logging

from kubetrain.api.job import TrainingJob
from kubetrain.api.kueue import RESOURCE_FLAVOR, WORKLOAD_PRIORITY_CLASS, Workload
from kubetrain.controller.kube import Kube
from kubetrain.policy.kueue import KueueFacts, flavor_names
from kubetrain.render.kueue import priority_class, workload_name

log = logging.getLogger("kubetrain.kueue")


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


def fetch_kueue(kube: Kube, namespace: str, job: TrainingJob) -> KueueFacts:
    workload = kube.get_custom(Workload.api_info, namespace, workload_name(job.metadata.name))
    if workload is None:
        named = priority_class(job)
        found = kube.get_cluster_custom(WORKLOAD_PRIORITY_CLASS, named) if named else None
        return KueueFacts(priority=int(found["value"]) if found is not None else None)
    flavors = {name: spec for name in sorted(flavor_names(workload))
               if (spec := (kube.get_cluster_custom(RESOURCE_FLAVOR, name) or {}).get("spec")) is not None}
    return KueueFacts(workload=workload, flavors=flavors)
