"""PyTorch DDP: one headless Service for rendezvous DNS and one bare Pod per worker.

Bare pods rather than a Job or StatefulSet, because the operator restarts the whole group
itself: a controller that replaced single pods would break the all-or-nothing rendezvous.
"""

from __future__ import annotations

from typing import Any

from kubetrain.api.contract import ELASTIC_RENDEZVOUS_PORT, MASTER_PORT, REPLICA_INDEX_LABEL
from kubetrain.api.job import TrainingJob
from kubetrain.api.nodepools import NodePoolCatalogue
from kubetrain.render.access import render_access
from kubetrain.render.env import worker_env
from kubetrain.render.labels import job_labels, worker_labels, worker_selector
from kubetrain.render.names import service_name, worker_name
from kubetrain.render.objects import DesiredObjects, child_metadata
from kubetrain.render.placement import Placement, place
from kubetrain.render.pods import pod_image, trainer_pod
from kubetrain.render.settings import RenderSettings

RENDEZVOUS_PORT_NAME = "rendezvous"
ELASTIC_PORT_NAME = "elastic"


def render_pytorch(
    job: TrainingJob,
    catalogue: NodePoolCatalogue,
    settings: RenderSettings,
    allowed_regions: list[str] | None = None,
) -> DesiredObjects:
    """The children of the job's current attempt (status.attempt). Raises InvalidSpec when the
    spec cannot be placed. `allowed_regions` comes from the residency verdict (render.placement)."""
    placement = place(job.spec, catalogue, allowed_regions)
    attempt = job.status.current_attempt
    return DesiredObjects(
        service=_service(job),
        pods=[_worker(job, index, attempt, placement, settings) for index in range(job.spec.workers)],
        access=render_access(job),
    )


def _service(job: TrainingJob) -> dict[str, Any]:
    """Headless, and publishing not-ready addresses, so worker 0's DNS name resolves as soon as
    its pod has an IP: the other workers need it to rendezvous before anyone is ready.

    It selects worker 0 alone, as Kubeflow's training-operator serves only a PyTorchJob's master:
    the rendezvous names no other worker, and every pod in the selection costs the
    EndpointSlice controller an update per IP and readiness change, which at hundreds of jobs
    starting at once delays everyone's pods. An elastic job selects every worker, because
    torch elastic's rank 0 may be any of them and tells the others its own host name."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": child_metadata(job, service_name(job.metadata.name), job_labels(job.metadata.name)),
        "spec": {
            "clusterIP": "None",
            "publishNotReadyAddresses": True,
            "selector": _service_selector(job),
            "ports": [
                {"name": name, "port": port, "targetPort": port, "protocol": "TCP"} for name, port in _ports(job)
            ],
        },
    }


def _service_selector(job: TrainingJob) -> dict[str, str]:
    selector = worker_selector(job.metadata.name)
    if job.spec.elastic is None:
        selector[REPLICA_INDEX_LABEL] = "0"
    return selector


def _ports(job: TrainingJob) -> list[tuple[str, int]]:
    """An elastic job's rendezvous store listens on its own port beside the process group's."""
    ports = [(RENDEZVOUS_PORT_NAME, MASTER_PORT)]
    if job.spec.elastic is not None:
        ports.append((ELASTIC_PORT_NAME, ELASTIC_RENDEZVOUS_PORT))
    return ports


def _worker(
    job: TrainingJob, index: int, attempt: int, placement: Placement, settings: RenderSettings
) -> dict[str, Any]:
    name = worker_name(job.metadata.name, index)
    return trainer_pod(
        job,
        name,
        worker_labels(job.metadata.name, index, attempt, job.spec.workers),
        worker_env(job, index, attempt, pod_image(job, settings)),
        (job.spec.command, job.spec.args),
        [{"name": name, "containerPort": port, "protocol": "TCP"} for name, port in _ports(job)],
        placement,
        settings,
        network={"hostname": name, "subdomain": service_name(job.metadata.name)},
    )
