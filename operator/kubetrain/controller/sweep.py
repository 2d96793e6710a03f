"""Reconcile of one TrainingSweep: read it and its trial jobs, plan (pure, plan/sweep.py), write
the status (the new trials are recorded there first), then create the trials' jobs, delete the
pruned ones, post the Events and ask for the next wake-up. Every change of a trial job wakes its
sweep (controller/handlers.py), so trials are followed as they run."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError

from kubetrain.api.events import EventType
from kubetrain.api.nodepools import NodePoolCatalogue
from kubetrain.api.sweep import SWEEP_LABEL, SweepReason, TrainingSweep, TrainingSweepStatus
from kubetrain.controller.budget import fetch_budget
from kubetrain.controller.kube import Kube, api_message
from kubetrain.controller.requeue import QueuedReconciler
from kubetrain.plan.draft import Event
from kubetrain.plan.sweep import plan_sweep, refused

log = logging.getLogger("kubetrain.sweeps")


class SweepReconciler(QueuedReconciler):
    def __init__(
        self, kube: Kube, catalogue: NodePoolCatalogue, wake_job: Callable[[str, str], None], paused: bool = False
    ) -> None:
        """`wake_job`: the TrainingJob reconciler's wake-up, for the best trial of a promoteBest sweep."""
        super().__init__(paused)
        self.kube = kube
        self.catalogue = catalogue
        self.wake_job = wake_job

    def forget(self, namespace: str, name: str) -> None:
        self.requeuer.cancel(namespace, name)
        self.locks.forget(namespace, name)

    def reconcile(self, namespace: str, name: str) -> None:
        with self.locks(namespace, name):
            raw = self.kube.get_custom(TrainingSweep.api_info, namespace, name)
            if raw is None or raw["metadata"].get("deletionTimestamp"):
                self.forget(namespace, name)
                return
            try:
                sweep = TrainingSweep.model_validate(raw)
            except ValidationError as exc:
                log.warning("TrainingSweep %s/%s cannot be read: %s", namespace, name, exc.errors()[0]["msg"])
                return
            jobs = {
                job["metadata"]["name"]: job
                for job in self.kube.list_jobs(namespace, f"{SWEEP_LABEL}={name}")
                if any(ref.get("uid") == sweep.metadata.uid for ref in job["metadata"].get("ownerReferences") or [])
            }
            plan = plan_sweep(
                sweep, jobs, fetch_budget(self.kube, namespace), self.catalogue, dt.datetime.now(dt.timezone.utc)
            )
            # Written before any job is created: a trial exists in the search state before its job.
            self._write(namespace, name, sweep.status, plan.status)
            status, events = plan.status, list(plan.events)
            for job in plan.create:
                status = self._create(namespace, name, job, status, events)
            self._write(namespace, name, plan.status, status)
            for job_name, uid in plan.delete:
                log.info("TrainingSweep %s/%s deletes pruned trial %s", namespace, name, job_name)
                self.kube.delete_job(namespace, job_name, uid)
            if plan.release is not None:
                log.info("TrainingSweep %s/%s releases its best trial %s to its model's gates", namespace, name,
                         plan.release)
                self.wake_job(namespace, plan.release)
            for event in events:
                self.kube.post_event(raw, event.type, event.reason, event.message)
            self.requeuer.schedule(namespace, name, plan.requeue_after)

    def _write(self, namespace: str, name: str, old: TrainingSweepStatus, new: TrainingSweepStatus) -> None:
        if new.to_k8s() != old.to_k8s():
            # With the unset fields as nulls, so a merge patch clears them.
            self.kube.patch_custom_status(
                TrainingSweep.api_info, namespace, name, new.model_dump(mode="json", by_alias=True)
            )

    def _create(
        self, namespace: str, name: str, job: dict[str, Any], status: TrainingSweepStatus, events: list[Event]
    ) -> TrainingSweepStatus:
        """A trial the admission refuses (a residency or budget policy) fails with the refusal;
        the next reconcile draws the next trial."""
        job_name = job["metadata"]["name"]
        try:
            self.kube.create(namespace, job)
        except ApiException as exc:
            if exc.status not in (400, 403, 422):
                raise
            message = f"TrainingJob {job_name} was refused: {api_message(exc)}"[:1024]
            events.append(Event(type=EventType.WARNING, reason=SweepReason.TRIAL_REFUSED, message=message))
            self.requeuer.schedule(namespace, name, 0)
            return refused(status, job_name, message)
        log.info("TrainingSweep %s/%s created trial %s", namespace, name, job_name)
        return status
