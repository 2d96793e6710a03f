"""What the reconcilers of the kinds that stamp out TrainingJobs from a template share
(TrainingSchedule: controller/schedule.py; TrainingSweep: controller/sweep.py): reading the parent,
writing its status, and creating a job that the admission may refuse."""

from __future__ import annotations

import logging
from typing import Any, TypeVar

from kubernetes.client.exceptions import ApiException
from pydantic import BaseModel, ValidationError

from kubetrain.api.base import CamelModel
from kubetrain.api.identity import ApiInfo
from kubetrain.controller.kube import Kube, api_message
from kubetrain.controller.requeue import QueuedReconciler

M = TypeVar("M", bound=BaseModel)
# Statuses the API server answers a refused create with: a webhook's (403), the schema's or CEL's
# (422), a malformed object (400). Anything else is an outage: the reconcile raises and is retried.
REFUSED = (400, 403, 422)


class ParentReconciler(QueuedReconciler):
    log = logging.getLogger("kubetrain.parents")

    def __init__(self, kube: Kube, paused: bool = False) -> None:
        super().__init__(paused)
        self.kube = kube

    def forget(self, namespace: str, name: str) -> None:
        self.requeuer.cancel(namespace, name)
        self.locks.forget(namespace, name)

    def read(self, info: ApiInfo, kind: type[M], namespace: str, name: str) -> tuple[dict[str, Any], M] | None:
        """The parent as stored and as its model; None when it is gone or going (forgotten then),
        or cannot be read (logged: a schema the CRD admitted but the model refuses)."""
        raw = self.kube.get_custom(info, namespace, name)
        if raw is None or raw["metadata"].get("deletionTimestamp"):
            self.forget(namespace, name)
            return None
        try:
            return raw, kind.model_validate(raw)
        except ValidationError as exc:
            self.log.warning("%s %s/%s cannot be read: %s", info.kind, namespace, name, exc.errors()[0]["msg"])
            return None

    def write_status(self, info: ApiInfo, namespace: str, name: str, old: CamelModel, new: CamelModel) -> None:
        if new.to_k8s() != old.to_k8s():
            # With the unset fields as nulls, so a merge patch clears them.
            self.kube.patch_custom_status(info, namespace, name, new.model_dump(mode="json", by_alias=True))

    def create_job(self, namespace: str, job: dict[str, Any]) -> str | None:
        """Creates the job unless it exists; the admission's refusal (a budget, a residency
        policy), as a message for a Warning, when it refuses."""
        try:
            self.kube.create(namespace, job)
        except ApiException as exc:
            if exc.status not in REFUSED:
                raise
            return f"TrainingJob {job['metadata']['name']} was refused: {api_message(exc)}"[:1024]
        return None
