"""Reconcile of one Model: read it and its versions, resolve (pure), write status, post events.
Woken by every event of the Model and of its ModelVersions, through a Requeuer so that a standby
replica's wake-ups wait for it to lead."""

from __future__ import annotations

import datetime as dt
import logging

from pydantic import ValidationError

from kubetrain.api.registry import Model, ModelVersion
from kubetrain.controller.kube import Kube
from kubetrain.controller.requeue import QueuedReconciler
from kubetrain.plan.model import resolve

log = logging.getLogger("kubetrain.models")


class ModelReconciler(QueuedReconciler):
    def __init__(self, kube: Kube, paused: bool = False) -> None:
        super().__init__(paused)
        self.kube = kube

    def reconcile(self, namespace: str, name: str) -> None:
        with self.locks(namespace, name):
            raw = self.kube.get_custom(Model.api_info, namespace, name)
            if raw is None:
                self.locks.forget(namespace, name)
                return
            try:
                model = Model.model_validate(raw)
            except ValidationError as exc:
                log.warning("Model %s/%s cannot be read: %s", namespace, name, exc.errors()[0]["msg"])
                return
            versions = []
            for item in self.kube.list_model_versions(namespace, name):
                try:
                    versions.append(ModelVersion.model_validate(item))
                except ValidationError:
                    log.warning("ModelVersion %s/%s cannot be read", namespace, item["metadata"]["name"])
            plan = resolve(model, versions, dt.datetime.now(dt.timezone.utc))
            if plan.status.to_k8s() != model.status.to_k8s():
                # With the unset fields as nulls, so a merge patch clears them.
                self.kube.patch_custom_status(Model.api_info, namespace, name, plan.status.model_dump(
                    mode="json", by_alias=True))
                log.info("Model %s/%s: promoted %s", namespace, name, plan.status.promoted_version)
            for event in plan.events:
                self.kube.post_event(raw, event.type, event.reason, event.message)
