"""TrainingJobs through any cluster's API, for the `kubetrain` CLI, notebooks and pipelines.

A user's client, not the operator's (controller/kube.py): it authenticates with the user's
kubeconfig, reads objects as the API models (api/) so callers get typed, validated jobs, and only
creates, reads, patches spec.runPolicy.suspend and deletes, which any submitter's RBAC allows.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import kubernetes
import kubernetes.watch
from kubernetes.client.exceptions import ApiException

from kubetrain.api.history import MetricRecord
from kubetrain.api.identity import ApiInfo
from kubetrain.api.job import TrainingJob
from kubetrain.api.registry import MODEL_LABEL, Model, ModelVersion
from kubetrain.api.status import Phase
from kubetrain.api.sweep import TrainingSweep
from kubetrain.client import archive
from kubetrain.client.logs import ArchivedLogs, LogLine, merge_archived, pod_logs
from kubetrain.client.registry import NotServable, parse_reference, promoted_name

JOB = TrainingJob.api_info
FINISHED = (Phase.SUCCEEDED, Phase.FAILED)
# A watch ends after this many seconds and is re-opened from the last resourceVersion seen, so a
# connection a proxy or load balancer silently dropped is noticed.
WATCH_SECONDS = 60


class JobGone(RuntimeError):
    """The job was deleted (or never existed) while the caller waited for it."""


def current_namespace(kubeconfig: Path | None = None) -> str:
    """The namespace of the kubeconfig's current context, as kubectl picks it ("default" without
    one, or in a pod: its service account's)."""
    try:
        _, context = kubernetes.config.list_kube_config_contexts(config_file=str(kubeconfig) if kubeconfig else None)
    except (kubernetes.config.ConfigException, FileNotFoundError):
        path = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
        return path.read_text().strip() if path.is_file() else "default"
    return str((context.get("context") or {}).get("namespace") or "default")


def as_dict(answer: object) -> dict[str, Any]:
    """A custom-object answer: the kubernetes client types it `object`, and it is a JSON dict."""
    return cast(dict[str, Any], answer)


def connect(kubeconfig: Path | None = None) -> kubernetes.client.ApiClient:
    """An API client for the kubeconfig (default: $KUBECONFIG, else ~/.kube/config), or the pod's
    service account when there is no kubeconfig, as kubectl does."""
    try:
        api: kubernetes.client.ApiClient = kubernetes.config.new_client_from_config(
            config_file=str(kubeconfig) if kubeconfig else None
        )
        return api
    except kubernetes.config.ConfigException:
        if kubeconfig is not None:
            raise
        configuration = kubernetes.client.Configuration()
        kubernetes.config.load_incluster_config(client_configuration=configuration)
        return kubernetes.client.ApiClient(configuration)


class Client:
    """TrainingJobs of one namespace. `Client()` uses the current kubeconfig and its namespace."""

    def __init__(
        self, namespace: str | None = None, kubeconfig: Path | None = None,
        api: kubernetes.client.ApiClient | None = None,
    ) -> None:
        self.api = api if api is not None else connect(kubeconfig)
        self.namespace = namespace or current_namespace(kubeconfig)
        self.custom = kubernetes.client.CustomObjectsApi(self.api)
        self.core = kubernetes.client.CoreV1Api(self.api)

    def create(self, manifest: dict[str, Any]) -> TrainingJob:
        """Creates the job in this client's namespace (a namespace in the manifest must agree)."""
        body = {**manifest, "metadata": {**(manifest.get("metadata") or {}), "namespace": self.namespace}}
        created = self.custom.create_namespaced_custom_object(JOB.group, JOB.version, self.namespace, JOB.plural, body)
        return TrainingJob.model_validate(created)

    def get(self, name: str) -> TrainingJob:
        """The job as it is now; JobGone when it does not exist."""
        return TrainingJob.model_validate(self._fetch(JOB, name, JobGone))

    def _fetch(self, info: ApiInfo, name: str, missing: type[RuntimeError]) -> dict[str, Any]:
        """The object of kind `info` named `name` in this namespace; `missing` when there is none."""
        try:
            return as_dict(self.custom.get_namespaced_custom_object(info.group, info.version, self.namespace,
                                                                    info.plural, name))
        except ApiException as exc:
            if exc.status == 404:
                raise missing(f"{info.kind} {self.namespace}/{name} not found") from None
            raise

    def list_jobs(self) -> list[TrainingJob]:
        listed = as_dict(self.custom.list_namespaced_custom_object(JOB.group, JOB.version, self.namespace, JOB.plural))
        return sorted((TrainingJob.model_validate(raw) for raw in listed["items"]), key=lambda j: j.metadata.name)

    def delete(self, name: str) -> None:
        """Deletes the job; the garbage collector deletes its pods and services (owner references)."""
        try:
            self.custom.delete_namespaced_custom_object(JOB.group, JOB.version, self.namespace, JOB.plural, name)
        except ApiException as exc:
            if exc.status == 404:
                raise JobGone(f"TrainingJob {self.namespace}/{name} not found") from None
            raise

    def set_suspended(self, name: str, suspended: bool) -> TrainingJob:
        """spec.runPolicy.suspend: True deletes the workers and holds the job, False starts them again."""
        patch = {"spec": {"runPolicy": {"suspend": suspended}}}
        try:
            raw = self.custom.patch_namespaced_custom_object(
                JOB.group, JOB.version, self.namespace, JOB.plural, name, patch
            )
        except ApiException as exc:
            if exc.status == 404:
                raise JobGone(f"TrainingJob {self.namespace}/{name} not found") from None
            raise
        return TrainingJob.model_validate(raw)

    def watch(self, name: str, timeout: float | None = None) -> Iterator[TrainingJob]:
        """The job now, then again on every change, until it finishes (the last one yielded is
        finished) or `timeout` seconds pass; JobGone when it is deleted meanwhile."""
        deadline = None if timeout is None else time.monotonic() + timeout
        listed = as_dict(self.custom.list_namespaced_custom_object(
            JOB.group, JOB.version, self.namespace, JOB.plural, field_selector=f"metadata.name={name}"
        ))
        if not listed["items"]:
            raise JobGone(f"TrainingJob {self.namespace}/{name} not found")
        job = TrainingJob.model_validate(listed["items"][0])
        version = listed["metadata"]["resourceVersion"]
        yield job
        while job.status.phase not in FINISHED:
            left = WATCH_SECONDS if deadline is None else min(WATCH_SECONDS, deadline - time.monotonic())
            if left <= 0:
                return
            stream = kubernetes.watch.Watch().stream(
                self.custom.list_namespaced_custom_object, JOB.group, JOB.version, self.namespace, JOB.plural,
                field_selector=f"metadata.name={name}", resource_version=version, timeout_seconds=max(int(left), 1),
            )
            try:
                for event in cast(Iterator[dict[str, Any]], stream):
                    if event["type"] == "DELETED":
                        raise JobGone(f"TrainingJob {self.namespace}/{name} was deleted")
                    if event["type"] not in ("ADDED", "MODIFIED"):
                        continue
                    version = event["object"]["metadata"]["resourceVersion"]
                    job = TrainingJob.model_validate(event["object"])
                    yield job
                    if job.status.phase in FINISHED:
                        return
            except ApiException as exc:
                if exc.status != 410:
                    raise
                # The resourceVersion is too old to resume from: start again from a fresh read.
                job = self.get(name)
                version = job.metadata.resource_version or ""
                yield job

    def wait(self, name: str, timeout: float | None = None) -> TrainingJob:
        """The job once it has finished (Succeeded or Failed); TimeoutError after `timeout` seconds."""
        job = None
        for job in self.watch(name, timeout):
            pass
        if job is None or job.status.phase not in FINISHED:
            raise TimeoutError(f"TrainingJob {self.namespace}/{name} has not finished after {timeout}s")
        return job

    def metrics(self, name: str) -> dict[str, float]:
        """The final evaluation metrics once the trainer wrote them, else the live ones so far."""
        status = self.get(name).status
        if status.metrics:
            return dict(status.metrics)
        return dict(status.progress.metrics or {}) if status.progress is not None else {}

    def model_versions(self, model: str) -> list[ModelVersion]:
        """The recorded versions of a model line (a job's spec.model.name), oldest first."""
        info = ModelVersion.api_info
        listed = as_dict(self.custom.list_namespaced_custom_object(
            info.group, info.version, self.namespace, info.plural, label_selector=f"{MODEL_LABEL}={model}"
        ))
        versions = [ModelVersion.model_validate(raw) for raw in listed["items"]]
        return sorted(versions, key=lambda v: v.spec.version)

    def model(self, name: str) -> Model:
        return Model.model_validate(self._fetch(Model.api_info, name, NotServable))

    def model_version(self, name: str) -> ModelVersion:
        return ModelVersion.model_validate(self._fetch(ModelVersion.api_info, name, NotServable))

    def resolve_version(self, reference: str) -> ModelVersion:
        """`MODEL` (its promoted version) or `MODEL:VERSION` to the ModelVersion (client/registry.py)."""
        model, version = parse_reference(reference)
        return self.model_version(version or promoted_name(self.model(model)))

    def sweep(self, name: str) -> TrainingSweep:
        """The TrainingSweep as it is now, its trial table in status; JobGone when it does not exist."""
        return TrainingSweep.model_validate(self._fetch(TrainingSweep.api_info, name, JobGone))

    def events(self, name: str, kind: str = JOB.kind) -> list[dict[str, Any]]:
        """The Events of the job (or of the object of `kind`), oldest first, as the API serialises
        them (camelCase dicts)."""
        listed = self.core.list_namespaced_event(
            self.namespace, field_selector=f"involvedObject.name={name},involvedObject.kind={kind}"
        )
        events = [self.api.sanitize_for_serialization(e) for e in listed.items]
        return sorted(events, key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "")

    def history(self, name: str) -> list[MetricRecord]:
        """The metric history the trainer keeps in the job's output location (metrics.jsonl), in
        the order it was recorded: every few steps' train loss, each epoch's validation metrics,
        the final test metrics. Readable after the pods are gone (while the job, which names the
        output location, exists), from wherever that location is (client/archive.py);
        ArchiveUnreadable (a LookupError) otherwise."""
        return archive.history(self.get(name))

    def archived_logs(self, name: str, rank: int | None = None) -> ArchivedLogs:
        """The logs every trainer process archived in the job's output location (logs/rank-N.log),
        merged in time order as `logs` merges the pods' (one rank's when given), for when the
        pods are gone; ArchiveUnreadable (a LookupError) when there are none or they cannot be read."""
        folder, texts = archive.logs(self.get(name), rank)
        return ArchivedLogs(folder, merge_archived(texts))

    def logs(self, name: str, follow: bool = False, rank: int | None = None) -> Iterator[LogLine]:
        """The output of the job's current attempt: every worker's lines in time order, or one
        rank's; with `follow`, lines as they come until every pod's output ends."""
        job = self.get(name)
        return pod_logs(self.core, job, follow=follow, rank=rank)
