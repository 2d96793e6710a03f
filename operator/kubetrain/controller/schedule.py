"""Reconcile of one TrainingSchedule: plan (pure), create the due job, write status, events, and
a wake-up at the next scheduled time."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError

from kubetrain.api.events import EventType
from kubetrain.api.schedule import ScheduleReason, TrainingSchedule
from kubetrain.controller.kube import Kube, api_message
from kubetrain.controller.requeue import QueuedReconciler
from kubetrain.plan.draft import Event
from kubetrain.plan.schedule import plan_schedule

log = logging.getLogger("kubetrain.schedules")


class ScheduleReconciler(QueuedReconciler):
    def __init__(self, kube: Kube, paused: bool = False) -> None:
        super().__init__(paused)
        self.kube = kube

    def forget(self, namespace: str, name: str) -> None:
        self.requeuer.cancel(namespace, name)
        self.locks.forget(namespace, name)

    def reconcile(self, namespace: str, name: str) -> None:
        with self.locks(namespace, name):
            raw = self.kube.get_custom(TrainingSchedule.api_info, namespace, name)
            if raw is None or raw["metadata"].get("deletionTimestamp"):
                self.forget(namespace, name)
                return
            try:
                schedule = TrainingSchedule.model_validate(raw)
            except ValidationError as exc:
                log.warning("TrainingSchedule %s/%s cannot be read: %s", namespace, name, exc.errors()[0]["msg"])
                return
            plan = plan_schedule(schedule, dt.datetime.now(dt.timezone.utc))
            events = list(plan.events)
            if plan.create is not None:
                events = self._create(namespace, name, plan.create, events)
            if plan.status.to_k8s() != schedule.status.to_k8s():
                # With the unset fields as nulls, so a merge patch clears them.
                self.kube.patch_custom_status(TrainingSchedule.api_info, namespace, name, plan.status.model_dump(
                    mode="json", by_alias=True))
            for event in events:
                self.kube.post_event(raw, event.type, event.reason, event.message)
            self.requeuer.schedule(namespace, name, plan.requeue_after)

    def _create(self, namespace: str, name: str, job: dict[str, Any], events: list[Event]) -> list[Event]:
        """A job the admission refuses (a budget, a residency policy) is skipped, not retried: the
        next scheduled time tries again, with the Warning telling why this one did not run."""
        try:
            self.kube.create(namespace, job)
        except ApiException as exc:
            if exc.status not in (400, 403, 422):
                raise
            message = f"TrainingJob {job['metadata']['name']} was refused: {api_message(exc)}"
            return [Event(type=EventType.WARNING, reason=ScheduleReason.JOB_REFUSED, message=message[:1024])]
        log.info("TrainingSchedule %s/%s created %s", namespace, name, job["metadata"]["name"])
        return events

