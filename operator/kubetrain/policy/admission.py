"""The admission decision on one TrainingJob write (pure): refuse, or admit with warnings."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from kubetrain.api.immutable import frozen_changes
from kubetrain.api.job import TrainingJob
from kubetrain.api.nodepools import NodePoolCatalogue
from kubetrain.api.provenance import SUBMITTED_BY_ANNOTATION
from kubetrain.policy.budget import BudgetFacts, cost_bound_raised, judge_budget
from kubetrain.policy.residency.evaluate import ResidencyFacts, evaluate


class Admission(BaseModel):
    model_config = ConfigDict(frozen=True)

    refusal: str | None = Field(default=None, description="The message the API server returns; None admits.")
    warnings: list[str] = Field(default_factory=list, description="Audit-mode violations, shown by kubectl.")


def parse_job(raw: dict[str, Any]) -> TrainingJob | None:
    """None for a spec the models refuse: the CRD schema is the authority on shape at admission,
    and the reconcile fails such a job with InvalidSpec before any pod exists."""
    try:
        return TrainingJob.model_validate(raw)
    except ValidationError:
        return None


def validation_problems(exc: ValidationError) -> str:
    """Every problem pydantic found, each naming its field as the manifest spells it (the
    models' own messages already start with the field)."""
    problems = []
    for err in exc.errors():
        message = err["msg"].removeprefix("Value error, ")
        if not message.startswith(("spec.", "metadata.")):
            message = f"{'.'.join(str(p) for p in err['loc'])}: {message}"
        problems.append(message)
    return "; ".join(problems)


MAX_SPEC_BYTES = 512 * 1024
"""The spec is copied into every pod of the job (env, template), and a pod, like any object, must
fit the API server's and etcd's limits (about 1.5 MiB): a larger spec would be admitted and then
fail every pod create, or wedge updates of the job itself."""


def spec_refusal(raw: dict[str, Any], old: dict[str, Any] | None = None) -> str | None:
    """The refusal of a job the models refuse (rules CEL cannot express, such as a variable set
    twice in a template container) or whose spec is too large; None admits. Without the webhook
    the reconcile fails a job the models refuse with InvalidSpec before any pod exists."""
    frozen = frozen_changes(raw, old)
    if frozen:
        meta = raw.get("metadata") or {}
        return f"TrainingJob {meta.get('namespace')}/{meta.get('name')} cannot be changed so: {'; '.join(frozen)}"
    size = len(json.dumps(raw.get("spec"), separators=(",", ":")))
    if size > MAX_SPEC_BYTES:
        meta = raw.get("metadata") or {}
        return (f"TrainingJob {meta.get('namespace')}/{meta.get('name')} is too large: spec is {size} bytes "
                f"(as JSON), at most {MAX_SPEC_BYTES} are allowed because it reaches every pod of the job; keep "
                "data in the dataset (spec.dataset.uri), not in env values, arguments or the pod template")
    try:
        TrainingJob.model_validate(raw)
    except ValidationError as exc:
        meta = raw.get("metadata") or {}
        return f"TrainingJob {meta.get('namespace')}/{meta.get('name')} is invalid: {validation_problems(exc)}"
    return None


def spec_unchanged(new: dict[str, Any], old: dict[str, Any] | None) -> bool:
    """An UPDATE that leaves the spec alone (labels, finalizers, the garbage collector) is not
    re-judged at admission: refusing it could wedge deletion of a job whose policy tightened.
    The reconcile re-checks such jobs against the current policies instead."""
    return old is not None and new.get("spec") == old.get("spec")


def admit(job: TrainingJob, facts: ResidencyFacts, catalogue: NodePoolCatalogue) -> Admission:
    verdict = evaluate(job, facts, catalogue)
    meta = job.metadata
    if verdict.blocking:
        return Admission(
            refusal=f"TrainingJob {meta.namespace}/{meta.name} refused by data residency: "
            f"{verdict.summary(verdict.blocking)}",
            warnings=[v.message() for v in verdict.audited],
        )
    return Admission(warnings=[f"data residency (Audit): {v.message()}" for v in verdict.audited])


def admit_budget(
    job: TrainingJob, facts: BudgetFacts, catalogue: NodePoolCatalogue, now: datetime, old: TrainingJob | None = None
) -> str | None:
    """The refusal message when the job does not fit its namespace's budget; None admits. An
    update (`old`) is judged only when it raises the most the job can cost. A new job refused only
    by policies that queue (onExhaustion Queue) is admitted: the reconcile holds it Queued until
    it fits. The reconcile judges again before the job starts and when a spec.workers raise rolls
    it (the budget may be spent in between)."""
    if old is not None and not cost_bound_raised(old, job):
        return None
    verdict = judge_budget(job, facts, catalogue, now)
    if verdict.allowed or (verdict.queue and old is None):
        return None
    meta = job.metadata
    return f"TrainingJob {meta.namespace}/{meta.name} refused by the GPU budget: {verdict.message}"


def submitter_changed(new: dict[str, Any], old: dict[str, Any] | None) -> str | None:
    """The submitter recorded at CREATE is provenance: no later update may change or remove it."""
    if old is None:
        return None
    before = ((old.get("metadata") or {}).get("annotations") or {}).get(SUBMITTED_BY_ANNOTATION)
    after = ((new.get("metadata") or {}).get("annotations") or {}).get(SUBMITTED_BY_ANNOTATION)
    if before == after:
        return None
    return (
        f"metadata.annotations[{SUBMITTED_BY_ANNOTATION}] is recorded by the operator when the job is created "
        f"({before!r}) and cannot be changed to {after!r}; leave it out of your manifest"
    )
