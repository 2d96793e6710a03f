"""kopf handlers: thin triggers for one level-triggered reconcile per job.

Every TrainingJob event and every event of a pod or service the operator manages that brings
something new (not the echo of the operator's own write) wakes Reconciler.reconcile(namespace,
job) shortly after, once for a burst of events. The pods and services are watched by the
operator itself (controller/informer.py), not through kopf. The reconcile reads the latest state, so a
missed or repeated event never matters, and kopf's initial listing at start-up is the "resume"
of every job. Only on-event handlers are used: kopf then keeps no progress annotations on the
user's object and needs no finalizer (children are owned and garbage-collected).

Every replica runs these handlers; on a standby (controller.leadership) the wake-ups they ask for
wait until it leads, while its cache stays current and its webhooks answer admission.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import kopf
import kubernetes

from kubetrain.api.budget import BudgetPolicy
from kubetrain.api.identity import ApiInfo
from kubetrain.api.job import TrainingJob
from kubetrain.api.kueue import Workload
from kubetrain.api.provenance import SUBMITTED_BY_ANNOTATION
from kubetrain.api.registry import MODEL_LABEL, Model, ModelVersion
from kubetrain.api.residency import DataResidencyPolicy
from kubetrain.api.schedule import TrainingSchedule
from kubetrain.api.sweep import SWEEP_LABEL, TrainingSweep
from kubetrain.controller.budget import fetch_budget
from kubetrain.controller.config import OperatorConfig
from kubetrain.controller.dryrun import pod_refusal
from kubetrain.controller.logging_setup import job_logger
from kubetrain.controller.model import ModelReconciler
from kubetrain.controller.parents import ParentReconciler
from kubetrain.controller.reconciler import Reconciler
from kubetrain.controller.residency import fetch_residency
from kubetrain.controller.schedule import ScheduleReconciler
from kubetrain.controller.sweep import SweepReconciler
from kubetrain.controller.webhook_server import webhook_server
from kubetrain.policy.admission import (
    admit,
    admit_budget,
    parse_job,
    spec_refusal,
    spec_unchanged,
    submitter_changed,
)


def _resource(info: ApiInfo) -> tuple[str, str, str]:
    """What kopf's handler decorators name a resource by (group, version, plural), from the model's
    API identity."""
    return info.group, info.version, info.plural


_JOB = _resource(TrainingJob.api_info)


def _plain(body: kopf.Body) -> dict[str, Any]:
    """The event's decoded JSON as a dict, without a copy of its contents: kopf's Body is a
    read-only view over the object it decoded from the watch stream for this event alone, which
    it never writes to, and the operator never writes into what it caches (the planner's inputs
    are left as they were: tests/unit/test_plan_convergence.py). A deep copy per event was the
    largest part of the operator's deep copies (bench/README.md)."""
    return dict(body)


def _watch_parent(
    registry: kopf.OperatorRegistry, info: ApiInfo, parents: ParentReconciler
) -> None:
    """A kind that stamps out TrainingJobs from a template (TrainingSchedule, TrainingSweep): each
    of its events wakes its reconcile; a deletion forgets it (its jobs go by garbage collection)."""

    @kopf.on.event(*_resource(info), id=f"{info.singular}_changed", registry=registry)
    def parent_changed(type: str | None, name: str, namespace: str, **_: Any) -> None:
        if type == "DELETED":
            parents.forget(namespace, name)
            return
        parents.wake(namespace, name)


def connection_info(configuration: kubernetes.client.Configuration) -> kopf.ConnectionInfo:
    """kopf talks to the API server exactly as the operator's client does: the same server, CA and
    credentials (in a pod, the service account and $KUBERNETES_SERVICE_HOST; elsewhere the
    kubeconfig run_operator loaded). Not kopf's own service-account login, whose server is
    kubernetes.default.svc: that needs cluster DNS, and a restart while DNS was down or still
    starting kept kopf from the API server that the operator's client reached. Called again on
    every 401, when the client's refresh hook has read a rotated service-account token."""
    header = configuration.get_api_key_with_prefix("BearerToken") or ""
    scheme, _, token = header.rpartition(" ")  # "bearer <token>", or a bare token
    return kopf.ConnectionInfo(
        server=configuration.host,
        ca_path=configuration.ssl_ca_cert,
        insecure=not configuration.verify_ssl,
        username=configuration.username or None,
        password=configuration.password or None,
        scheme=scheme or None,
        token=token or None,
        certificate_path=configuration.cert_file,
        private_key_path=configuration.key_file,
    )


def build_registry(
    reconciler: Reconciler,
    models: ModelReconciler,
    schedules: ScheduleReconciler,
    sweeps: SweepReconciler,
    config: OperatorConfig,
) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()

    @kopf.on.startup(registry=registry)
    def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        # Long-lived watches can go silent without an error; bounded watches are re-established.
        settings.watching.server_timeout = config.watch_server_timeout
        settings.watching.client_timeout = config.watch_client_timeout
        settings.watching.connect_timeout = 30
        settings.posting.level = logging.WARNING
        settings.execution.max_workers = 16
        # The operator's resources are fixed and their CRDs installed before it (Helm's crds/):
        # no watching of CustomResourceDefinitions or namespaces, so RBAC needs neither.
        settings.scanning.disabled = True
        if config.webhook is not None:
            settings.admission.server = webhook_server(config.webhook)
            settings.admission.managed = config.webhook.configuration_name

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        return connection_info(reconciler.kube.api.configuration)

    @kopf.on.cleanup(registry=registry)
    def stop(**_: Any) -> None:
        reconciler.shutdown()
        models.shutdown()
        schedules.shutdown()
        sweeps.shutdown()

    @kopf.on.event(*_JOB, registry=registry)
    def job_changed(
        type: str | None, body: kopf.Body, name: str, namespace: str, labels: dict[str, str], **_: Any
    ) -> None:
        sweep = labels.get(SWEEP_LABEL)
        if sweep:
            # A trial's every change (progress, end, deletion) is news to its sweep.
            sweeps.wake(namespace, sweep)
        if type == "DELETED":
            reconciler.forget(namespace, name)
            return
        if reconciler.cache.job_event(type, _plain(body)):
            reconciler.wake(namespace, name)

    @kopf.on.event(*_resource(DataResidencyPolicy.api_info), registry=registry)
    def policy_changed(name: str, type: str | None, **_: Any) -> None:
        # Policies change after admission: every job is re-judged against the new set.
        logging.getLogger("kubetrain.residency").info("DataResidencyPolicy %s %s; re-checking jobs", name, type)
        reconciler.policies_changed()

    @kopf.on.event(*_resource(BudgetPolicy.api_info), registry=registry)
    def budget_changed(name: str, type: str | None, **_: Any) -> None:
        logging.getLogger("kubetrain.budget").info("BudgetPolicy %s %s; re-judging queued jobs", name, type)
        reconciler.budgets_changed()

    @kopf.on.event(*_resource(Model.api_info), registry=registry)
    def model_changed(type: str | None, name: str, namespace: str, **_: Any) -> None:
        if type != "DELETED":
            models.wake(namespace, name)

    @kopf.on.event(*_resource(ModelVersion.api_info), registry=registry)
    def version_changed(labels: dict[str, str], namespace: str, **_: Any) -> None:
        line = labels.get(MODEL_LABEL)
        if line:
            models.wake(namespace, line)

    _watch_parent(registry, TrainingSchedule.api_info, schedules)
    _watch_parent(registry, TrainingSweep.api_info, sweeps)

    if reconciler.kueue:

        @kopf.on.event(*_resource(Workload.api_info), registry=registry)
        def workload_changed(body: kopf.Body, namespace: str, **_: Any) -> None:
            # Kueue admitted, evicted or requeued a job's Workload: the job (its owner) acts on it.
            for ref in body.get("metadata", {}).get("ownerReferences") or []:
                if ref.get("kind") == TrainingJob.api_info.kind and ref.get("controller"):
                    reconciler.wake(namespace, ref["name"])

    if config.webhook is not None:

        # Who submitted a job is only known at admission (the request's authenticated user); the
        # annotation set here is the record, and the validating side refuses any later change to it.
        @kopf.on.mutate(
            *_JOB, id="submitted-by", operations=["CREATE"], persistent=True, registry=registry
        )
        def submitted_by(userinfo: dict[str, Any] | None, patch: kopf.Patch, **_: Any) -> None:
            username = (userinfo or {}).get("username")
            if username:
                patch.metadata.annotations[SUBMITTED_BY_ANNOTATION] = username

        @kopf.on.validate(
            *_JOB, id="provenance", operations=["UPDATE"], persistent=True, registry=registry
        )
        def provenance(body: kopf.Body, old: Any, **_: Any) -> None:
            refusal = submitter_changed(dict(body), old)
            if refusal is not None:
                raise kopf.AdmissionError(refusal, code=403)

        # UPDATE too: raising spec.workers or activeDeadlineSeconds of an admitted job must fit as well.
        @kopf.on.validate(
            *_JOB, id="budget", operations=["CREATE", "UPDATE"], persistent=True, registry=registry
        )
        def budget(body: kopf.Body, old: Any, **_: Any) -> None:
            raw = dict(body)
            job = parse_job(raw)
            before = parse_job(dict(old)) if old else None
            if job is None or spec_unchanged(raw, old):
                return
            namespace = job.metadata.namespace
            facts = fetch_budget(reconciler.kube, namespace)
            now = dt.datetime.now(dt.timezone.utc)
            refusal = admit_budget(job, facts, reconciler.inputs.catalogue, now, before)
            if refusal is not None:
                job_logger(namespace, job.metadata.name).info("admission refused: %s", refusal)
                raise kopf.AdmissionError(refusal, code=403)

        @kopf.on.validate(
            *_JOB, id="spec", operations=["CREATE", "UPDATE"], persistent=True, registry=registry
        )
        def spec(body: kopf.Body, old: Any, **_: Any) -> None:
            raw = dict(body)
            if spec_unchanged(raw, old):
                return
            refusal = spec_refusal(raw, old)
            job = parse_job(raw) if refusal is None else None
            if job is not None:
                refusal = pod_refusal(reconciler.kube, job, reconciler.inputs)
            if refusal is not None:
                raise kopf.AdmissionError(refusal, code=422)

        # persistent: kopf leaves the webhook registered when the operator stops, so with
        # failurePolicy Fail no TrainingJob is written unchecked while the operator is down.
        @kopf.on.validate(
            *_JOB, id="residency", operations=["CREATE", "UPDATE"], persistent=True,
            registry=registry,
        )
        def residency(body: kopf.Body, old: Any, warnings: list[str], **_: Any) -> None:
            raw = dict(body)
            if spec_unchanged(raw, old):
                return
            job = parse_job(raw)
            if job is None:
                return
            namespace = job.metadata.namespace
            facts = fetch_residency(reconciler.kube, job, namespace, reconciler.inputs.default_residency)
            decision = admit(job, facts, reconciler.inputs.catalogue)
            warnings.extend(decision.warnings)
            if decision.refusal is not None:
                job_logger(namespace, job.metadata.name).info("admission refused: %s", decision.refusal)
                raise kopf.AdmissionError(decision.refusal, code=403)

    @kopf.on.probe(id="jobs_tracked", registry=registry)
    def jobs_tracked(**_: Any) -> int:
        return reconciler.tracked()

    return registry
