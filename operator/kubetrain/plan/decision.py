"""Raw API objects in, one reconcile's decision out (pure): the seam between the kopf handlers
and the planner, so handlers never touch pydantic models and the planner never sees raw dicts."""

from __future__ import annotations

import datetime as dt
import logging
from functools import partial
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from kubetrain.api import ConditionType, NodePoolCatalogue, TrainingJob, TrainingJobStatus
from kubetrain.api.events import EventType
from kubetrain.api.status import Reason
from kubetrain.plan import Event, Observed, derive_phase, plan, status_patch
from kubetrain.plan.budget import needs_budget
from kubetrain.plan.conditions import set_condition
from kubetrain.plan.draft import Draft
from kubetrain.plan.kueue import needs_kueue
from kubetrain.plan.promotion import PromotionFacts, needs_promotion
from kubetrain.plan.quota import needs_quota
from kubetrain.policy.admission import validation_problems
from kubetrain.policy.budget import BudgetFacts, judge_budget
from kubetrain.policy.kueue import KueueFacts
from kubetrain.policy.quota import QuotaFacts
from kubetrain.policy.residency import DefaultResidency, ResidencyFacts, evaluate
from kubetrain.render.errors import InvalidSpec
from kubetrain.render.job import render_children
from kubetrain.render.settings import RenderSettings

RETRY_PLANNING_SECONDS = 30.0


class PlanInputs(BaseModel):
    """The cluster-independent facts every plan needs."""

    model_config = ConfigDict(frozen=True)

    catalogue: NodePoolCatalogue
    render: RenderSettings
    default_residency: DefaultResidency = DefaultResidency.ALLOW_ALL


class Decision(BaseModel):
    model_config = ConfigDict(frozen=True)

    create: list[dict[str, Any]] = Field(default_factory=list)
    delete_pods: list[str] = Field(default_factory=list)
    status_patch: dict[str, Any] = Field(default_factory=dict, description="Empty when status is unchanged.")
    events: list[Event] = Field(default_factory=list)
    requeue_after: float | None = None
    delete_job: bool = False
    workload_status: dict[str, Any] | None = None


def plan_job(
    raw: dict[str, Any],
    pods: list[dict[str, Any]],
    services: list[dict[str, Any]],
    inputs: PlanInputs,
    now: dt.datetime,
    residency: ResidencyFacts,
    budget: BudgetFacts | None = None,
    promotion: PromotionFacts | None = None,
    quota: QuotaFacts | None = None,
    kueue: KueueFacts | None = None,
) -> Decision:
    """`residency` holds the namespace's policies and labels and the claims' storage classes,
    fetched fresh for this reconcile; `budget`, `promotion`, `quota` and `kueue` only when Needs says so. The steps,
    each pure: judge the policies, render the desired children (on the planner's demand: see
    plan.job.Desired), plan the status and actions, diff the status."""
    # metav1 times have second precision; planning at that precision keeps re-plans identical.
    now = now.replace(microsecond=0)
    try:
        job = TrainingJob.model_validate(raw)
    except ValidationError as exc:
        return _unparseable(raw, exc, now)
    try:
        observed = Observed.from_k8s(pods, services)
    except Exception as exc:  # noqa: BLE001 - a child the operator cannot read is not the spec's fault
        return _planning_error(raw, exc, now)
    try:
        verdict = evaluate(job, residency, inputs.catalogue)
        budget_verdict = judge_budget(job, budget, inputs.catalogue, now) if budget is not None else None
        desired = partial(render_children, job, inputs.catalogue, inputs.render, verdict.regions)
        result = plan(
            job, observed, desired, inputs.catalogue, inputs.render, now, verdict, budget_verdict, promotion, quota,
            kueue,
        )
    except (InvalidSpec, ValidationError) as exc:  # the spec (or its pod template) cannot be rendered
        message = f"the operator cannot plan this spec ({type(exc).__name__}: {exc}); fix the spec"
        return invalid_spec(raw, message, now, [p["metadata"]["name"] for p in pods])
    except Exception as exc:  # noqa: BLE001 - an operator bug: retried, never blamed on the spec
        return _planning_error(raw, exc, now)
    patch = status_patch(raw.get("status"), result.status)
    return Decision(
        create=result.create,
        delete_pods=result.delete_pods,
        status_patch=patch,
        events=result.events,
        requeue_after=result.requeue_after,
        delete_job=result.delete_job,
        workload_status=result.workload_status,
    )


class Needs(BaseModel):
    """Which optional facts a reconcile of this job must fetch before planning."""

    model_config = ConfigDict(frozen=True)

    job: TrainingJob | None = None
    budget: bool = False
    promotion: bool = False
    quota: bool = False
    kueue: bool = Field(default=False, description="The job asks Kueue for admission (a queue-name label).")
    fresh_residency: bool = Field(
        default=True,
        description="Read the residency facts (policies, namespace labels) from the API, not from what "
        "the operator keeps: until the job's pods are first created, a policy or label set a moment "
        "before the job must count.",
    )

    @classmethod
    def of(cls, raw: dict[str, Any], now: dt.datetime, pods: list[dict[str, Any]]) -> Needs:
        """The budget before the job first starts; the quotas while an attempt's pods are being
        created and none of `pods` (the job's, as observed) is one of them; the model line once it
        has succeeded."""
        try:
            job = TrainingJob.model_validate(raw)
        except ValidationError:
            return cls()
        draft = Draft.start(job, now)
        return cls(
            job=job, budget=needs_budget(draft), promotion=needs_promotion(draft),
            quota=needs_quota(draft, pods), kueue=needs_kueue(draft),
            fresh_residency=not draft.finished() and draft.start_time is None,
        )

    def beyond(self, fetched: Needs) -> bool:
        """Whether these needs (of the status just written) call for facts the reconcile that wrote
        it did not fetch: the job then needs one more reconcile (e.g. promotion after Succeeded)."""
        return (
            (self.budget and not fetched.budget)
            or (self.promotion and not fetched.promotion)
            or (self.quota and not fetched.quota)
        )


def _planning_error(raw: dict[str, Any], exc: Exception, now: dt.datetime) -> Decision:
    """Logged with the job's name; the job is held (Running=False, PlanningError) and planned again
    in RETRY_PLANNING_SECONDS, its pods left as they are."""
    meta = raw.get("metadata") or {}
    logging.getLogger("kubetrain.planning").exception("planning %s/%s failed", meta.get("namespace"), meta.get("name"))
    message = (f"the operator could not plan this job ({type(exc).__name__}: {exc}); retrying every "
               f"{RETRY_PLANNING_SECONDS:g}s, the pods are left as they are")
    return held(raw, Reason.PLANNING_ERROR, message, now).model_copy(update={"requeue_after": RETRY_PLANNING_SECONDS})


def _unparseable(raw: dict[str, Any], exc: ValidationError, now: dt.datetime) -> Decision:
    """A spec the API server accepted but the models refuse (rules CEL cannot express) fails the
    job with every offending field named, before any pod exists."""
    return invalid_spec(raw, f"the spec cannot run: {validation_problems(exc)}", now)


def create_refused(raw: dict[str, Any], message: str, now: dt.datetime, never_ran: bool) -> Decision:
    """Running=False, reason CreateRefused: the API server refused a child for a reason that may
    pass (a PodSecurity level, a quota, a policy admission); the reconcile retries with backoff.
    `never_ran`: no pod of the job ever existed, so it has not started: the start the plan wrote
    is taken back (the deadline clock does not run, and the spec, which the message asks to fix,
    is not frozen)."""
    return held(raw, Reason.CREATE_REFUSED, message, now, unstart=never_ran)


def held(raw: dict[str, Any], reason: str, message: str, now: dt.datetime, unstart: bool = False) -> Decision:
    """Running=False with `reason`: something that may pass holds the job, which is retried. A
    Warning Event when the job was not already held so."""
    try:
        previous = TrainingJobStatus.model_validate(raw.get("status") or {})
    except ValidationError:
        previous = TrainingJobStatus()
    generation = int(raw.get("metadata", {}).get("generation", 1))
    before = next((c for c in previous.conditions if c.type == ConditionType.RUNNING), None)
    conditions = set_condition(previous.conditions, ConditionType.RUNNING, False, reason, message, now, generation)
    update: dict[str, Any] = {"conditions": conditions, "phase": derive_phase(conditions)}
    if unstart:
        update.update(start_time=None, first_start_time=None)
    status = previous.model_copy(update=update)
    patch = status_patch(raw.get("status"), status)
    new = before is None or before.reason != reason
    events = [Event(type=EventType.WARNING, reason=reason, message=message)] if new else []
    return Decision(status_patch=patch, events=events)


def invalid_spec(raw: dict[str, Any], message: str, now: dt.datetime, pods: list[str] | None = None) -> Decision:
    """Failed=True, reason InvalidSpec, with `message`, and a Warning Event; no pod is created and
    `pods` (what exists of the job's) are deleted. Also what the reconcile writes when the API
    server refuses a rendered pod as invalid (controller.refused)."""
    try:
        previous = TrainingJobStatus.model_validate(raw.get("status") or {})
    except ValidationError:
        previous = TrainingJobStatus()
    generation = int(raw.get("metadata", {}).get("generation", 1))
    conditions = set_condition(
        previous.conditions, ConditionType.FAILED, True, Reason.INVALID_SPEC, message, now, generation
    )
    status = previous.model_copy(
        update={"conditions": conditions, "phase": derive_phase(conditions), "observed_generation": generation,
                "completion_time": previous.completion_time or now}
    )
    patch = status_patch(raw.get("status"), status)
    events = [Event(type=EventType.WARNING, reason=Reason.INVALID_SPEC, message=message)] if patch else []
    return Decision(status_patch=patch, events=events, delete_pods=pods or [])
