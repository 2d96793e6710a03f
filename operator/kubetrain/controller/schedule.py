"""Reconcile of one TrainingSchedule: plan (pure), create the due job, write status, events, and
a wake-up at the next scheduled time."""

from __future__ import annotations

import datetime as dt
import logging

from kubetrain.api.events import EventType
from kubetrain.api.schedule import ScheduleReason, TrainingSchedule
from kubetrain.controller.parents import ParentReconciler
from kubetrain.plan.draft import Event
from kubetrain.plan.schedule import plan_schedule


class ScheduleReconciler(ParentReconciler):
    log = logging.getLogger("kubetrain.schedules")

    def reconcile(self, namespace: str, name: str) -> None:
        info = TrainingSchedule.api_info
        with self.locks(namespace, name):
            read = self.read(info, TrainingSchedule, namespace, name)
            if read is None:
                return
            raw, schedule = read
            plan = plan_schedule(schedule, dt.datetime.now(dt.timezone.utc))
            events = list(plan.events)
            if plan.create is not None:
                # A job the admission refuses is skipped, not retried: the next scheduled time
                # tries again, with the Warning telling why this one did not run.
                refusal = self.create_job(namespace, plan.create)
                if refusal is not None:
                    events = [Event(type=EventType.WARNING, reason=ScheduleReason.JOB_REFUSED, message=refusal)]
                else:
                    self.log.info("TrainingSchedule %s/%s created %s", namespace, name, plan.create["metadata"]["name"])
            self.write_status(info, namespace, name, schedule.status, plan.status)
            for event in events:
                self.kube.post_event(raw, event.type, event.reason, event.message)
            self.requeuer.schedule(namespace, name, plan.requeue_after)
