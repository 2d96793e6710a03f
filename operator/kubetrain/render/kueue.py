"""The Workload that describes a Kueue-queued job to Kueue, and its pods placed on the flavour
Kueue admitted them to.

One Workload per job (not per attempt): Kueue keeps a job's place, priority and eviction history
on it, and an evicted job waits to be re-admitted on the same Workload. Its pod sets are the
job's roles (PyTorch: worker; Ray: head and worker) with their counts (an elastic job's workers
with minCount, so Kueue may admit fewer), and a pod template per role taken from the pods the
attempt would create, so the requests Kueue counts are exactly theirs."""

from __future__ import annotations

from typing import Any

from kubetrain.api.contract import ROLE_LABEL, WORKER_ROLE
from kubetrain.api.job import TrainingJob
from kubetrain.api.kueue import (
    PRIORITY_CLASS_LABEL,
    QUEUE_NAME_LABEL,
    Placement,
    PodSet,
    PriorityClassRef,
    Workload,
    WorkloadSpec,
)
from kubetrain.render.labels import job_labels
from kubetrain.render.names import dns_label
from kubetrain.render.objects import child_metadata
from kubetrain.render.podtemplate import merge_pod_spec


def queue_name(job: TrainingJob) -> str | None:
    """The LocalQueue a job asks for, if any."""
    return job.metadata.labels.get(QUEUE_NAME_LABEL) or None


def workload_name(job_name: str) -> str:
    return dns_label(job_name, "-kueue")


def priority_class(job: TrainingJob) -> str | None:
    """The WorkloadPriorityClass a job names, if any."""
    return job.metadata.labels.get(PRIORITY_CLASS_LABEL) or None


def render_workload(job: TrainingJob, queue: str, pods: list[dict[str, Any]], priority: int | None) -> dict[str, Any]:
    """`pods`: every pod of the attempt, as rendered (all roles); `priority`: the value of the job's
    WorkloadPriorityClass (Kueue requires it beside the reference)."""
    roles: dict[str, list[dict[str, Any]]] = {}
    for pod in pods:
        roles.setdefault(pod["metadata"]["labels"][ROLE_LABEL], []).append(pod)
    pod_sets = [PodSet(name=role, count=len(members), min_count=_min_count(job, role, len(members)),
                       template=_template(members[0]))
                for role, members in roles.items()]
    named = priority_class(job)
    workload = Workload(
        metadata=child_metadata(job, workload_name(job.metadata.name), job_labels(job.metadata.name)),
        spec=WorkloadSpec(
            queue_name=queue,
            pod_sets=pod_sets,
            priority_class_ref=PriorityClassRef(name=named) if named and priority is not None else None,
            priority=priority if named else None,
        ),
    )
    return workload.to_k8s()


def _min_count(job: TrainingJob, role: str, count: int) -> int | None:
    """An elastic job's workers may be admitted partially: from minWorkers up."""
    elastic = job.spec.elastic
    if role != WORKER_ROLE or elastic is None or elastic.min_workers >= count:
        return None
    return elastic.min_workers


def _template(pod: dict[str, Any]) -> dict[str, Any]:
    """What Kueue needs of a pod: its spec (requests, selectors, tolerations) and its labels."""
    spec = {k: v for k, v in pod["spec"].items() if k != "schedulingGroup"}
    return {"metadata": {"labels": pod["metadata"].get("labels", {})}, "spec": spec}


def placed(pods: list[dict[str, Any]], placements: dict[str, Placement]) -> list[dict[str, Any]]:
    """`pods` with the admitted flavour's node labels added to their nodeSelector and its
    tolerations to theirs, by role (pod set), merged as the operator's own fields are merged into
    a user's pod template."""
    out = []
    for pod in pods:
        placement = placements.get(pod["metadata"]["labels"][ROLE_LABEL])
        flavour = placement.model_dump(by_alias=True, exclude_defaults=True) if placement is not None else {}
        out.append({**pod, "spec": merge_pod_spec(pod["spec"], flavour)} if flavour else pod)
    return out
