"""Whether native gang placement is available: asked of discovery once, at start (a cluster does
not turn feature gates on under a running operator; restart it after enabling them), and said
once in the log either way, so a cluster without the API keeps today's placement knowingly."""

from __future__ import annotations

import logging

from kubetrain.api.podgroup import PodGroup
from kubetrain.controller.config import OperatorConfig
from kubetrain.controller.kube import Kube

log = logging.getLogger("kubetrain.gang")


def pod_groups_served(kube: Kube, config: OperatorConfig) -> bool:
    """False without asking when --gang-scheduling is off."""
    info = PodGroup.api_info
    if config.gang_scheduling == "off":
        log.info("gang scheduling off (--gang-scheduling=off): pods are scheduled one by one")
        return False
    if kube.serves(info):
        log.info("the cluster serves %s/%s %s: each job attempt gets a PodGroup (all pods bound or none)",
                 info.group, info.version, info.plural)
        return True
    log.warning(
        "the cluster does not serve %s/%s %s (Kubernetes 1.37+ with feature gate GenericWorkload on kube-apiserver "
        "and kube-scheduler, and --runtime-config=%s/%s=true): pods are scheduled one by one, and a job may hold "
        "part of its GPUs while the rest wait; see docs/gang-and-queueing.md",
        info.group, info.version, info.plural, info.group, info.version,
    )
    return False
