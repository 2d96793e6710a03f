"""Ray: a head pod (GCS, dashboard, client server, and the driver) behind a headless Service,
and one Ray worker pod per spec.workers that joins it with `ray start --block`.

The head's entrypoint is the trainer's Ray head launcher (kubetrain_trainer.ray_head): it runs
`ray start --head --block` with the flags before `--`, waits until every worker has joined, runs
the driver after `--` (by default the kubetrain trainer as a Ray Train TorchTrainer) and exits with
the driver's code, so the head pod's phase is the job's outcome.

Ray flags refer to the pod's own env as `$(VAR)`, which the kubelet expands: the local executing
node can then move every job onto its own loopback ports by rewriting env alone.
"""

from __future__ import annotations

import math
from typing import Any

from kubernetes.utils import parse_quantity

from kubetrain.api.contract import HEAD_ROLE, RAY_CLIENT_PORT, RAY_DASHBOARD_PORT, RAY_GCS_PORT, WORKER_ROLE
from kubetrain.api.job import TrainingJob
from kubetrain.api.nodepools import NodePoolCatalogue
from kubetrain.api.spec import TrainingJobSpec
from kubetrain.render.access import render_access
from kubetrain.render.env import contract_env
from kubetrain.render.labels import job_labels, role_labels, role_selector
from kubetrain.render.names import ray_head_name, worker_name
from kubetrain.render.objects import DesiredObjects, child_metadata
from kubetrain.render.placement import Placement, place
from kubetrain.render.pods import pod_image, trainer_pod
from kubetrain.render.settings import RenderSettings

RAY_PORTS = (("gcs", RAY_GCS_PORT), ("dashboard", RAY_DASHBOARD_PORT), ("client", RAY_CLIENT_PORT))
RAY_HEAD_LAUNCHER = ["python", "-m", "kubetrain_trainer.ray_head"]
RAY_DEFAULT_DRIVER = ["python", "-m", "kubetrain_trainer.ray_train"]
RAY_START = ["ray", "start"]


def render_ray(
    job: TrainingJob,
    catalogue: NodePoolCatalogue,
    settings: RenderSettings,
    allowed_regions: list[str] | None = None,
) -> DesiredObjects:
    """The children of the job's current attempt (status.attempt). Raises InvalidSpec when the
    spec cannot be placed. `allowed_regions` comes from the residency verdict (render.placement):
    the head and every worker get the same required region affinity."""
    placement = place(job.spec, catalogue, allowed_regions)
    attempt = job.status.current_attempt
    return DesiredObjects(
        service=_head_service(job),
        pods=[_head(job, attempt, placement, settings)]
        + [_worker(job, index, attempt, placement, settings) for index in range(job.spec.workers)],
        access=render_access(job),
    )


def head_host(job: TrainingJob) -> str:
    """The head Service's cluster DNS name; headless, so it resolves straight to the head pod."""
    return f"{ray_head_name(job.metadata.name)}.{job.metadata.namespace}.svc"


def advertised_cpus(spec: TrainingJobSpec) -> int:
    """The CPUs a worker pod offers Ray: its CPU request, whole, and at least one per training
    process, so Ray Train fits exactly nprocPerNode training workers on every pod."""
    requested = math.floor(parse_quantity(spec.resources.cpu)) if spec.resources.cpu is not None else 0
    return max(requested, spec.nproc_per_node)


def _head_service(job: TrainingJob) -> dict[str, Any]:
    """Publishing not-ready addresses lets workers resolve the head as soon as it has an IP."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": child_metadata(job, ray_head_name(job.metadata.name), job_labels(job.metadata.name)),
        "spec": {
            "clusterIP": "None",
            "publishNotReadyAddresses": True,
            "selector": role_selector(job.metadata.name, HEAD_ROLE),
            "ports": [{"name": n, "port": p, "targetPort": p, "protocol": "TCP"} for n, p in RAY_PORTS],
        },
    }


def _ray_env(job: TrainingJob) -> dict[str, str]:
    """RAY_AUTH_MODE=disabled: Ray >= 2.5x turns token authentication on by default for a new
    head and keeps its token in the head's ~/.ray, which no worker pod (nor the driver's
    connection check) can read, so workers were refused by the GCS. The Ray cluster is reached
    only inside the pod network, through the job's headless Service, as with KubeRay's default."""
    return {
        "KUBETRAIN_RAY_HEAD_HOST": head_host(job),
        "KUBETRAIN_RAY_GCS_PORT": str(RAY_GCS_PORT),
        "RAY_AUTH_MODE": "disabled",
    }


def _extra_flags(job: TrainingJob) -> list[str]:
    """spec.ray.rayStartParams as flags; an empty value is a bare flag (e.g. disable-usage-stats)."""
    return [f"--{k}={v}" if v else f"--{k}" for k, v in sorted(job.spec.ray.ray_start_params.items())]


def _head(job: TrainingJob, attempt: int, placement: Placement, settings: RenderSettings) -> dict[str, Any]:
    spec = job.spec
    nproc = spec.nproc_per_node
    env = {
        **_ray_env(job),
        "KUBETRAIN_RAY_DASHBOARD_PORT": str(RAY_DASHBOARD_PORT),
        "KUBETRAIN_RAY_CLIENT_PORT": str(RAY_CLIENT_PORT),
        "KUBETRAIN_RAY_WORKERS": str(spec.workers),
        "KUBETRAIN_RAY_TRAIN_WORKERS": str(spec.workers * nproc),
        "KUBETRAIN_RAY_CPUS_PER_TRAIN_WORKER": _per_process(advertised_cpus(spec), nproc),
        "KUBETRAIN_RAY_GPUS_PER_TRAIN_WORKER": _per_process(spec.resources.gpus, nproc),
        "KUBETRAIN_RAY_MAX_FAILURES": str(spec.ray.max_worker_failures),
    }
    # The head takes no training work (0 CPUs, 0 GPUs for Ray's scheduler): it hosts the GCS and
    # the driver, and a training worker there would compete with them.
    head_flags = [
        "--port=$(KUBETRAIN_RAY_GCS_PORT)",
        "--dashboard-host=0.0.0.0",
        "--dashboard-port=$(KUBETRAIN_RAY_DASHBOARD_PORT)",
        "--ray-client-server-port=$(KUBETRAIN_RAY_CLIENT_PORT)",
        "--num-cpus=0",
        "--num-gpus=0",
        *_extra_flags(job),
    ]
    driver = [*(spec.command or RAY_DEFAULT_DRIVER), *(spec.args or [])]
    return trainer_pod(
        job,
        ray_head_name(job.metadata.name),
        role_labels(job.metadata.name, HEAD_ROLE, 0, attempt, spec.workers),
        contract_env(job, attempt, env, pod_image(job, settings)),
        (RAY_HEAD_LAUNCHER, [*head_flags, "--", *driver]),
        [{"name": n, "containerPort": p, "protocol": "TCP"} for n, p in RAY_PORTS],
        placement.model_copy(update={"resources": _head_resources(job)}),
        settings,
    )


def _per_process(total: int, nproc: int) -> str:
    """A pod's resource split over its training processes; "1" rather than "1.0" when whole."""
    share = total / nproc
    return str(int(share)) if share.is_integer() else f"{share:g}"


def _head_resources(job: TrainingJob) -> dict[str, dict[str, str]]:
    """Like a worker's, minus GPUs: memory is limited at its request, CPU only requested."""
    head = job.spec.ray.head_resources
    requests = {k: v for k, v in (("cpu", head.cpu), ("memory", head.memory)) if v is not None}
    limits = {"memory": head.memory} if head.memory is not None else {}
    return {k: v for k, v in (("requests", requests), ("limits", limits)) if v}


def _worker(
    job: TrainingJob, index: int, attempt: int, placement: Placement, settings: RenderSettings
) -> dict[str, Any]:
    """Advertises the pod's CPUs (advertised_cpus) and GPUs to Ray, so Ray Train places
    nprocPerNode training workers on it, each with its share of the GPUs."""
    spec = job.spec
    flags = [
        "--address=$(KUBETRAIN_RAY_HEAD_HOST):$(KUBETRAIN_RAY_GCS_PORT)",
        f"--num-cpus={advertised_cpus(spec)}",
        f"--num-gpus={spec.resources.gpus}",
        "--block",
        *_extra_flags(job),
    ]
    return trainer_pod(
        job,
        worker_name(job.metadata.name, index),
        role_labels(job.metadata.name, WORKER_ROLE, index, attempt, spec.workers),
        contract_env(job, attempt, _ray_env(job), pod_image(job, settings)),
        (RAY_START, flags),
        [],
        placement,
        settings,
    )
