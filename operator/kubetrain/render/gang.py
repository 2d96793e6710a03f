"""Native gang placement: one PodGroup per attempt (scheduling.k8s.io/v1beta1), minCount all
of the attempt's pods (PyTorch: every worker, or spec.elastic.minWorkers; Ray: the head and every
worker), and each pod joined
to it by spec.schedulingGroup, so kube-scheduler binds the whole group or none of it. A new
attempt gets a new group (its name carries the attempt), so a whole-group restart never waits
on the pods of the attempt before; the groups of past attempts go with the job (owner reference)."""

from __future__ import annotations

from typing import Any

from kubetrain.api.job import TrainingJob
from kubetrain.api.podgroup import GangSchedulingPolicy, PodGroup, PodGroupSchedulingPolicy, PodGroupSpec
from kubetrain.api.spec import GangScheduling
from kubetrain.render.labels import job_labels
from kubetrain.render.names import pod_group_name
from kubetrain.render.objects import DesiredObjects, child_metadata
from kubetrain.render.settings import RenderSettings


def gang_enabled(job: TrainingJob, settings: RenderSettings) -> bool:
    """The operator found PodGroups served and allows them, and the job does not opt out."""
    return settings.gang_scheduling and job.spec.run_policy.gang_scheduling == GangScheduling.AUTO


def with_pod_group(job: TrainingJob, children: DesiredObjects) -> DesiredObjects:
    """`children` with the attempt's PodGroup, and every pod in it."""
    name = pod_group_name(job.metadata.name, job.status.current_attempt)
    group = PodGroup(
        metadata=child_metadata(job, name, job_labels(job.metadata.name)),
        spec=PodGroupSpec(
            scheduling_policy=PodGroupSchedulingPolicy(gang=GangSchedulingPolicy(min_count=_min_count(job, children)))
        ),
    )
    pods = [_joined(pod, name) for pod in children.pods]
    return children.model_copy(update={"pods": pods, "pod_group": group.to_k8s()})


def _min_count(job: TrainingJob, children: DesiredObjects) -> int:
    """An elastic job trains with spec.elastic.minWorkers, so that many bound together start it; the
    rest are bound as capacity appears and join the running group."""
    return job.spec.elastic.min_workers if job.spec.elastic is not None else len(children.pods)


def _joined(pod: dict[str, Any], group: str) -> dict[str, Any]:
    return {**pod, "spec": {**pod["spec"], "schedulingGroup": {"podGroupName": group}}}
