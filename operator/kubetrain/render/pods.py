"""One trainer pod, whatever the runtime: the container contract (image, env, termination
message), placement, the trainer's ServiceAccount, pod security and the user's pod template, so
every runtime's pods obey the same residency, node-pool, access and security rules."""

from __future__ import annotations

import copy
from typing import Any

from kubetrain.api.contract import TERMINATION_MESSAGE_PATH, TRAINER_CONTAINER
from kubetrain.api.job import TrainingJob
from kubetrain.render.access import pod_service_account
from kubetrain.render.objects import child_metadata
from kubetrain.render.placement import Placement
from kubetrain.render.podtemplate import merge_pod
from kubetrain.render.settings import RenderSettings

# PodSecurity "restricted" by default, so trainer pods run in namespaces that enforce it. No user
# id is forced: the image's own (the trainer image runs as uid 1000) must be non-root. A pod
# template may loosen these where its namespace allows (podtemplate.merge_pod).
POD_SECURITY_CONTEXT: dict[str, Any] = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
CONTAINER_SECURITY_CONTEXT: dict[str, Any] = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
# NCCL and Ray's object store share memory through /dev/shm; a container's default is 64 MiB.
SHM_VOLUME = {"name": "dshm", "emptyDir": {"medium": "Memory"}}
SHM_MOUNT = {"name": "dshm", "mountPath": "/dev/shm"}


def pod_image(job: TrainingJob, settings: RenderSettings) -> str:
    """The trainer container's image; the trainer is also told it (KUBETRAIN_IMAGE)."""
    return job.spec.image or settings.default_image


def trainer_pod(
    job: TrainingJob,
    name: str,
    labels: dict[str, str],
    env: list[dict[str, str]],
    argv: tuple[list[str] | None, list[str] | None],
    ports: list[dict[str, Any]],
    placement: Placement,
    settings: RenderSettings,
    network: dict[str, str] | None = None,
) -> dict[str, Any]:
    """`argv` is (command, args), each None to keep the image's; `network` adds hostname and
    subdomain where a runtime needs a stable per-pod DNS name."""
    command, args = argv
    container: dict[str, Any] = {
        "name": TRAINER_CONTAINER,
        "image": pod_image(job, settings),
        "env": env,
        "terminationMessagePath": TERMINATION_MESSAGE_PATH,
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": copy.deepcopy(CONTAINER_SECURITY_CONTEXT),
        "volumeMounts": [dict(SHM_MOUNT)],
    }
    if ports:
        container["ports"] = ports
    if command:
        container["command"] = list(command)
    if args:
        container["args"] = list(args)
    if placement.resources:
        container["resources"] = placement.resources
    spec: dict[str, Any] = {
        **(network or {}),
        "restartPolicy": "Never",
        "serviceAccountName": pod_service_account(job),
        "securityContext": copy.deepcopy(POD_SECURITY_CONTEXT),
        "containers": [container],
        "volumes": [copy.deepcopy(SHM_VOLUME)],
    }
    if placement.node_selector:
        spec["nodeSelector"] = placement.node_selector
    if placement.tolerations:
        spec["tolerations"] = placement.tolerations
    if placement.affinity:
        spec["affinity"] = placement.affinity
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": child_metadata(job, name, labels), "spec": spec}
    merged = merge_pod(job.spec.pod_template, pod)
    # An init step of the template without an image (making data, fetching weights) runs the
    # trainer's image, so one manifest works whichever trainer image the cluster is set up with.
    for init in merged["spec"].get("initContainers") or []:
        if isinstance(init, dict) and not init.get("image"):
            init["image"] = container["image"]
    return merged
