"""Reconcile of one TrainingSweep: read it and its trial jobs, plan (pure, plan/sweep.py), write
the status (the new trials are recorded there first), then create the trials' jobs, delete the
pruned ones, wake the best trial of a promoteBest sweep that has ended, post the Events and ask for
the next wake-up. Every change of a trial job wakes its sweep (controller/handlers.py), so trials
are followed as they run."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable

from kubetrain.api.events import EventType
from kubetrain.api.nodepools import NodePoolCatalogue
from kubetrain.api.sweep import SWEEP_LABEL, SweepReason, TrainingSweep
from kubetrain.controller.budget import fetch_budget
from kubetrain.controller.kube import Kube
from kubetrain.controller.parents import ParentReconciler
from kubetrain.controller.requeue import EVENT_COALESCE_SECONDS
from kubetrain.plan.draft import Event
from kubetrain.plan.sweep import plan_sweep, refused


class SweepReconciler(ParentReconciler):
    log = logging.getLogger("kubetrain.sweeps")
    # Every change of every trial job wakes the sweep: a burst of them is one reconcile.
    wake_delay = EVENT_COALESCE_SECONDS

    def __init__(
        self, kube: Kube, catalogue: NodePoolCatalogue, wake_job: Callable[[str, str], None], paused: bool = False
    ) -> None:
        """`wake_job`: the TrainingJob reconciler's wake-up, for the best trial of a promoteBest sweep."""
        super().__init__(kube, paused)
        self.catalogue = catalogue
        self.wake_job = wake_job

    def reconcile(self, namespace: str, name: str) -> None:
        info = TrainingSweep.api_info
        with self.locks(namespace, name):
            read = self.read(info, TrainingSweep, namespace, name)
            if read is None:
                return
            raw, sweep = read
            budget = fetch_budget(self.kube, namespace)
            # Under a budget the namespace's jobs are listed already: the trials are among them.
            listed = budget.jobs if budget.policies else self.kube.list_jobs(namespace, f"{SWEEP_LABEL}={name}")
            jobs = {
                job["metadata"]["name"]: job
                for job in listed
                if (job["metadata"].get("labels") or {}).get(SWEEP_LABEL) == name
                and any(ref.get("uid") == sweep.metadata.uid for ref in job["metadata"].get("ownerReferences") or [])
            }
            plan = plan_sweep(sweep, jobs, budget, self.catalogue, dt.datetime.now(dt.timezone.utc))
            # Written before any job is created: a trial exists in the search state before its job.
            self.write_status(info, namespace, name, sweep.status, plan.status)
            status, events = plan.status, list(plan.events)
            for job in plan.create:
                job_name = job["metadata"]["name"]
                refusal = self.create_job(namespace, job)
                if refusal is None:
                    self.log.info("TrainingSweep %s/%s created trial %s", namespace, name, job_name)
                    continue
                # The trial fails with the refusal; the next reconcile, at once, draws the next one.
                events.append(Event(type=EventType.WARNING, reason=SweepReason.TRIAL_REFUSED, message=refusal))
                status = refused(status, job_name, refusal)
                self.requeuer.schedule(namespace, name, 0)
            self.write_status(info, namespace, name, plan.status, status)
            for job_name, uid in plan.delete:
                self.log.info("TrainingSweep %s/%s deletes pruned trial %s", namespace, name, job_name)
                self.kube.delete_job(namespace, job_name, uid)
            if plan.release is not None:
                self.log.info("TrainingSweep %s/%s releases its best trial %s to its model's gates", namespace,
                              name, plan.release)
                self.wake_job(namespace, plan.release)
            for event in events:
                self.kube.post_event(raw, event.type, event.reason, event.message)
            self.requeuer.schedule(namespace, name, plan.requeue_after)
