"""One reconcile of one job: read -> plan (pure) -> apply -> write status -> events -> requeue."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import urllib3
from kubernetes.client.exceptions import ApiException

from kubetrain.api.kueue import Workload
from kubetrain.api.status import Phase, Reason
from kubetrain.controller.backoff import Backoff
from kubetrain.controller.budget import BudgetUsageReader, fetch_budget
from kubetrain.controller.cache import ClusterCache
from kubetrain.controller.kube import Conflict, Kube, namespace_terminating
from kubetrain.controller.kueue import KueueReader
from kubetrain.controller.logging_setup import job_logger
from kubetrain.controller.metrics import OperatorMetrics
from kubetrain.controller.promotion import fetch_promotion
from kubetrain.controller.refused import fail_refused_child, hold_forbidden_child
from kubetrain.controller.requeue import EVENT_COALESCE_SECONDS, QueuedReconciler
from kubetrain.controller.residency import ResidencyReader
from kubetrain.controller.shared_reads import SharedReads
from kubetrain.plan.decision import Needs, PlanInputs, plan_job
from kubetrain.policy.quota import QuotaFacts
from kubetrain.render.kueue import workload_name

# A failed reconcile (an API error, the API server unreachable) is retried after 1 s, doubling up
# to 5 minutes, +/- 20 %.
ERROR_RETRY = (1.0, 300.0, 0.2)
# A create refused as forbidden: after 5 s, doubling up to 5 minutes.
REFUSED_RETRY = (5.0, 300.0)
CONFLICT_RETRIES = 3


class Reconciler(QueuedReconciler):
    """Owns the per-job locks and wake-ups of one operator instance. `paused`: a standby replica's
    (controller.leadership); its watches keep the cache current and its wake-ups wait for resume()."""

    wake_delay = EVENT_COALESCE_SECONDS

    def __init__(
        self, kube: Kube, inputs: PlanInputs, metrics: OperatorMetrics, paused: bool = False, kueue: bool = False
    ) -> None:
        """`kueue`: the cluster serves Kueue's Workloads (controller/kueue.py, asked once at start)."""
        super().__init__(paused)
        self.kueue = KueueReader(kube) if kueue else None
        self.kube = kube
        self.cache = ClusterCache(kube)
        self.shared_reads = SharedReads()
        self.residency = ResidencyReader(kube, inputs.default_residency, self.shared_reads)
        self.inputs = inputs
        self.metrics = metrics
        self.budgets = BudgetUsageReader(kube, self.cache.jobs, self.residency.namespace_labels, inputs.catalogue)
        metrics.watch_jobs(self.cache.jobs)
        metrics.watch_budgets(self.budgets.usage)
        self._tracked: set[tuple[str, str]] = set()
        self.errors = Backoff(*ERROR_RETRY)
        self.refusals = Backoff(*REFUSED_RETRY)

    def tracked(self) -> int:
        return len(self._tracked)

    def forget(self, namespace: str, name: str) -> None:
        self.requeuer.cancel(namespace, name)
        self.locks.forget(namespace, name)
        self.cache.forget(namespace, name)
        self._tracked.discard((namespace, name))
        self.errors.succeeded((namespace, name))
        self.refusals.succeeded((namespace, name))

    def policies_changed(self) -> None:
        """A DataResidencyPolicy changed after admission: every job is judged again by a fresh list."""
        self.residency.changed()
        for namespace, name in sorted(self._tracked):
            self.requeuer.schedule(namespace, name, 0.0)

    def budgets_changed(self) -> None:
        """A BudgetPolicy changed (raised, removed, queueing now): the queued jobs are judged again
        at once, rather than at their next periodic check (plan/budget.py); the metrics' list of
        policies is refreshed."""
        self.budgets.changed()
        for namespace, name in self.cache.in_phase(Phase.QUEUED):
            self.requeuer.schedule(namespace, name, 0.0)

    def reconcile(self, namespace: str, name: str) -> None:
        log = job_logger(namespace, name)
        with self.locks(namespace, name):
            for _ in range(CONFLICT_RETRIES):
                started = time.monotonic()
                try:
                    self._reconcile_once(namespace, name)
                    self._timed(started, "ok")
                    self.errors.succeeded((namespace, name))
                    return
                except Conflict:
                    self._timed(started, "conflict")
                    log.debug("status conflict; re-reading")
                    self.cache.refresh_job(namespace, name)
                except ApiException as exc:
                    self._timed(started, "error")
                    if namespace_terminating(exc):
                        log.debug("namespace is being deleted, and the job with it; not retrying")
                        return
                    failure = f"API error {exc.status} {exc.reason}"
                    break
                except urllib3.exceptions.HTTPError as exc:
                    self._timed(started, "error")
                    failure = f"API server unreachable ({exc})"
                    break
            else:
                failure = f"the job changed during {CONFLICT_RETRIES} reconciles in a row"
            delay = self.errors.failed((namespace, name))
            log.warning("%s; retrying in %.1fs", failure, delay)
            self.requeuer.schedule(namespace, name, delay)

    def _timed(self, started: float, outcome: str) -> None:
        self.metrics.reconcile_duration.labels(outcome).observe(time.monotonic() - started)

    def _reconcile_once(self, namespace: str, name: str) -> None:
        began = time.monotonic()
        log = job_logger(namespace, name)
        raw = self.cache.get_job(namespace, name)
        if raw is None or raw["metadata"].get("deletionTimestamp"):
            self.forget(namespace, name)
            return
        self._tracked.add((namespace, name))
        uid = raw["metadata"]["uid"]
        pods, services = self.cache.list_children(namespace, name)
        pods = [p for p in pods if _owned_by(p, uid)]
        services = [s for s in services if _owned_by(s, uid)]
        started = time.monotonic()
        now = dt.datetime.now(dt.timezone.utc)
        needs = Needs.of(raw, now, pods)
        facts = self.residency.facts(needs.job, namespace, fresh=needs.fresh_residency, began=began, pods=pods)
        # The budget is judged before the job starts, when the residency facts were just read
        # fresh: their namespace labels serve both.
        budget = fetch_budget(
            self.kube, namespace, facts.namespace_labels,
            self.shared_reads.read("budget-policies", began, self.kube.list_budget_policies),
        ) if needs.budget else None
        promotion = fetch_promotion(self.kube, needs.job) if needs.promotion and needs.job else None
        quota = QuotaFacts(quotas=self.kube.list_resource_quotas(namespace)) if needs.quota else None
        kueue = self.kueue.facts(namespace, needs.job) if needs.kueue and needs.job and self.kueue else None
        decision = plan_job(raw, pods, services, self.inputs, now, facts, budget, promotion, quota, kueue)
        old_status = raw.get("status") or {}
        current = raw
        if decision.status_patch:
            written = self.kube.patch_status(namespace, name, raw["metadata"]["resourceVersion"], decision.status_patch)
            self.cache.wrote(written)
            current = written or raw
            if written is not None and Needs.of(written, now, pods).beyond(needs):
                self.wake(namespace, name)  # the echo of this write is skipped as nothing new
            self.metrics.status_written(raw, old_status, decision.status_patch, now)
            old_phase, new_phase = old_status.get("phase"), decision.status_patch.get("phase", old_status.get("phase"))
            if old_phase != new_phase:
                log.info("phase %s -> %s", old_phase or "-", new_phase)
        for event in decision.events:  # before the creates: a refused one ends this reconcile
            self.kube.post_event(raw, event.type, event.reason, event.message)
        stalls = [e for e in decision.events if e.reason == Reason.PROGRESS_DEADLINE_EXCEEDED]
        for stall in stalls:
            log.warning("stalled: %s", stall.message)
        self.metrics.stalled(namespace, len(stalls))
        ran = bool(pods) or (old_status.get("attempt") or old_status.get("restarts") or 0) > 0
        for obj in decision.create:
            try:
                created = self.kube.create(namespace, obj)
            except ApiException as exc:
                if exc.status == 403 and not namespace_terminating(exc):
                    delay = self.refusals.failed((namespace, name))
                    log.warning("%s %s refused (403); retrying in %gs", obj["kind"], obj["metadata"]["name"], delay)
                    self.cache.wrote(hold_forbidden_child(self.kube, current, obj, exc, delay, never_ran=not ran))
                    # Pods to stop are stopped, and the plan's own wake-up (a deadline) stays.
                    for pod in decision.delete_pods:
                        self.kube.delete_pod(namespace, pod)
                    wanted = decision.requeue_after
                    self.requeuer.schedule(namespace, name, delay if wanted is None else min(delay, wanted))
                    return
                if exc.status != 422:
                    raise
                self.cache.wrote(
                    fail_refused_child(self.kube, current, obj, exc, [p["metadata"]["name"] for p in pods])
                )
                return
            if created is not None:
                self.cache.wrote(created)
                ran = ran or obj["kind"] == "Pod"
                log.info("created %s %s", obj["kind"], obj["metadata"]["name"])
        if decision.create:
            self.refusals.succeeded((namespace, name))
        if decision.workload_status is not None:
            self.kube.patch_custom_status(Workload.api_info, namespace, workload_name(name),
                                          decision.workload_status["status"])
            log.info("patched the status of Workload %s", workload_name(name))
        for pod in decision.delete_pods:
            self.kube.delete_pod(namespace, pod)
            log.info("deleted pod %s", pod)
        if decision.delete_job:
            log.info("ttlSecondsAfterFinished expired; deleting the job")
            self.kube.delete_job(namespace, name, uid)
            self.forget(namespace, name)
            return
        self.requeuer.schedule(namespace, name, decision.requeue_after)
        log.debug("reconciled in %.3fs", time.monotonic() - started)


def _owned_by(obj: dict[str, Any], uid: str) -> bool:
    return any(ref.get("uid") == uid and ref.get("controller") for ref in obj["metadata"].get("ownerReferences") or [])
