"""status.provenance and status.cost of one job, from its spec, metadata, times and rank 0's
final report. Frozen once the job has finished: the report lives in a pod that cleanPodPolicy
or a TTL may delete later, and a record must not change when its source disappears."""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import ValidationError

from kubetrain.api.budget import Cost
from kubetrain.api.job import TrainingJob
from kubetrain.api.nodepools import NodePoolCatalogue
from kubetrain.api.provenance import SUBMITTED_BY_ANNOTATION, Provenance, SweepProvenance
from kubetrain.api.sweep import SEARCH_SPACE_ANNOTATION, SWEEP_ANNOTATION, SWEEP_LABEL, TRIAL_LABEL
from kubetrain.plan.draft import Draft
from kubetrain.plan.report import ReportedProvenance, TrainerReport
from kubetrain.policy.budget import estimate, used_gpu_hours, with_usage

_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


def provenance(draft: Draft, report: TrainerReport | None, image: str, image_id: str | None) -> Provenance:
    """`image_id` is rank 0's container imageID, once its node has pulled the image."""
    old = draft.job.status.provenance
    if old is not None and old.completion_time is not None:
        return old
    job = draft.job
    produced = (report.provenance if report else None) or ReportedProvenance()
    dataset = job.spec.dataset
    return Provenance(
        submitted_by=job.metadata.annotations.get(SUBMITTED_BY_ANNOTATION),
        # What the code reports it read wins over what the spec names (DESIGN: status describes
        # the data the pods actually read); residency judged the spec's URIs at admission.
        dataset_uri=produced.dataset_uri or (dataset.uri if dataset else None),
        dataset_digest=produced.dataset_digest,
        dataset_profile=produced.dataset_profile,
        dataset_license=dataset.license if dataset else None,
        dataset_consent_basis=dataset.consent_basis if dataset else None,
        trainer_image=image,
        trainer_image_digest=image_digest(image_id),
        code_version=produced.code_version,
        config=_config(job),
        start_time=draft.start_time,
        completion_time=draft.completion_time,
        weights_uri=produced.weights_uri or (report.model_uri if report else None),
        weights_digest=produced.weights_digest,
        model_card_uri=produced.model_card_uri,
        exports=produced.exports,
        sweep=sweep_provenance(job),
    )


def cost(draft: Draft, catalogue: NodePoolCatalogue) -> Cost:
    """The estimate always; usage once the job has finished (a running job's usage is counted by
    the budget from its startTime, without rewriting status every reconcile)."""
    job = draft.job
    estimated = estimate(job.spec, catalogue)
    if draft.completion_time is None:
        return estimated
    status = job.status.model_copy(update={"start_time": draft.start_time, "completion_time": draft.completion_time})
    return with_usage(estimated, used_gpu_hours(job.spec, status, draft.now))


def image_digest(image_id: str | None) -> str | None:
    """The sha256 digest in an imageID, whatever the runtime's spelling around it
    (`repo@sha256:<hex>`, `docker-pullable://repo@sha256:<hex>`, a bare `sha256:<hex>`); None for
    runtimes that report no digest (an empty imageID, or a local image's name)."""
    found = _DIGEST.search(image_id or "")
    return found.group(0) if found else None


def sweep_provenance(job: TrainingJob) -> SweepProvenance | None:
    """From the labels and annotations a sweep puts on its trials (plan/sweep.py); None for a job
    no sweep created, or whose annotations were edited into something unreadable."""
    meta = job.metadata
    sweep, trial = meta.labels.get(SWEEP_LABEL), meta.labels.get(TRIAL_LABEL, "")
    if not sweep or not trial.isdigit():
        return None
    try:
        parameters = json.loads(meta.annotations.get(SWEEP_ANNOTATION) or "{}")
        space = json.loads(meta.annotations.get(SEARCH_SPACE_ANNOTATION) or "{}")
        return SweepProvenance(sweep=sweep, trial=int(trial), parameters=parameters, search_space=space)
    except (ValueError, ValidationError):
        return None


def _config(job: TrainingJob) -> dict[str, Any]:
    """The whole configuration with defaults filled in; a custom command's is its command line."""
    spec = job.spec
    if spec.task is not None:
        return spec.task.to_k8s()
    return {"command": spec.command or [], "args": spec.args or []}
