"""What a renderer returns, and the ownership every child carries."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from kubetrain.api.contract import API_VERSION, KIND
from kubetrain.api.job import TrainingJob


class DesiredObjects(BaseModel):
    """The children one attempt of a job needs, as Kubernetes JSON ready to POST."""

    model_config = ConfigDict(frozen=True)

    service: dict[str, Any]
    pods: list[dict[str, Any]]
    access: list[dict[str, Any]]
    pod_group: dict[str, Any] | None = None

    def all(self) -> list[dict[str, Any]]:
        group = [self.pod_group] if self.pod_group is not None else []
        return [*self.access, *group, self.service, *self.pods]


def owner_reference(job: TrainingJob) -> dict[str, Any]:
    """controller: true lets the operator tell its children from look-alikes; blockOwnerDeletion
    keeps the job around until foreground deletion has removed them."""
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": job.metadata.name,
        "uid": job.metadata.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def child_metadata(job: TrainingJob, name: str, labels: dict[str, str]) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": job.metadata.namespace,
        "labels": labels,
        "ownerReferences": [owner_reference(job)],
    }
