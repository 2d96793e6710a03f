"""Least privilege for the trainer: a per-job ServiceAccount whose Role may read and patch the
status of its own TrainingJob only (`resourceNames`), so a compromised worker cannot touch any
other job, and the operator never hands out more than it holds itself."""

from __future__ import annotations

from typing import Any

from kubetrain.api.job import TrainingJob
from kubetrain.render.labels import job_labels
from kubetrain.render.names import trainer_access_name
from kubetrain.render.objects import child_metadata

STATUS_VERBS = ["get", "patch"]


def pod_service_account(job: TrainingJob) -> str:
    """The user's own account when the pod template names one (e.g. for cloud storage identity),
    else the job's trainer account; either way it is the one the RoleBinding names."""
    user = job.spec.pod_template.spec.get("serviceAccountName")
    return str(user) if user else trainer_access_name(job.metadata.name)


def render_access(job: TrainingJob) -> list[dict[str, Any]]:
    name = trainer_access_name(job.metadata.name)
    meta = child_metadata(job, name, job_labels(job.metadata.name))
    account = pod_service_account(job)
    objects: list[dict[str, Any]] = []
    if account == name:
        objects.append({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta})
    objects.append(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": meta,
            "rules": [
                {
                    "apiGroups": [TrainingJob.api_info.group],
                    "resources": [f"{TrainingJob.api_info.plural}/status"],
                    "resourceNames": [job.metadata.name],
                    "verbs": STATUS_VERBS,
                }
            ],
        }
    )
    objects.append(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": meta,
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": job.metadata.namespace}],
        }
    )
    return objects
