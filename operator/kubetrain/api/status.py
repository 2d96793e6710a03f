"""`TrainingJob.status`. The operator owns every field but `progress`, `metrics` and
`lastCheckpoint`, which the trainer's rank 0 writes (docs/contracts.md)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import ConfigDict, Field

from kubetrain.api.base import CamelModel
from kubetrain.api.budget import Cost
from kubetrain.api.provenance import Provenance


class Phase(StrEnum):
    PENDING = "Pending"
    QUEUED = "Queued"
    STARTING = "Starting"
    RUNNING = "Running"
    RESTARTING = "Restarting"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    SUSPENDED = "Suspended"


class ConditionType(StrEnum):
    CREATED = "Created"
    RUNNING = "Running"
    RESTARTING = "Restarting"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    SUSPENDED = "Suspended"
    QUEUED = "Queued"
    RESIDENCY_COMPLIANT = "ResidencyCompliant"
    BUDGET_AVAILABLE = "BudgetAvailable"
    PROMOTED = "Promoted"
    STALLED = "Stalled"


class Reason(StrEnum):
    """The reasons the operator writes on a TrainingJob's conditions and Events, declared once. Reasons
    it passes through from elsewhere (a pod's waiting reason such as ImagePullBackOff, a failure the
    trainer reports: plan/report.py) are plain strings."""

    INVALID_SPEC = "InvalidSpec"
    SUSPENDED = "Suspended"
    RESUMED = "Resumed"
    DEADLINE_EXCEEDED = "DeadlineExceeded"
    WORKER_REPLACED = "WorkerReplaced"
    WORKER_REPLACEMENTS_EXHAUSTED = "WorkerReplacementsExhausted"
    BACKOFF_LIMIT_EXCEEDED = "BackoffLimitExceeded"
    RESTARTING = "Restarting"
    WORKERS_CHANGED = "WorkersChanged"
    ALL_WORKERS_CREATED = "AllWorkersCreated"
    ALL_WORKERS_RUNNING = "AllWorkersRunning"
    CREATE_REFUSED = "CreateRefused"
    PLANNING_ERROR = "PlanningError"
    # A pod of the group ended or vanished (plan/failures.py).
    WORKER_FAILED = "WorkerFailed"
    WORKER_DELETED = "WorkerDeleted"
    WORKER_LOST = "WorkerLost"
    # An elastic group re-formed (plan/elastic.py): a worker left or joined; too few are left.
    MEMBERSHIP_CHANGED = "MembershipChanged"
    BELOW_MIN_WORKERS = "BelowMinWorkers"
    MIN_WORKERS_RUNNING = "MinWorkersRunning"
    # The outcome: Succeeded=True (per runtime, plan/group.py), and what closes Running and Restarting.
    ALL_WORKERS_SUCCEEDED = "AllWorkersSucceeded"
    DRIVER_SUCCEEDED = "DriverSucceeded"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    # Stalled (plan/run_policy.py: runPolicy.progressDeadlineSeconds).
    PROGRESS_DEADLINE_EXCEEDED = "ProgressDeadlineExceeded"
    PROGRESS_RESUMED = "ProgressResumed"
    # ResidencyCompliant (plan/residency.py).
    RESIDENCY_VIOLATION = "ResidencyViolation"
    RESIDENCY_VIOLATION_AUDITED = "ResidencyViolationAudited"
    COMPLIANT = "Compliant"
    NO_POLICY = "NoPolicy"
    # BudgetAvailable (policy/budget.py).
    WITHIN_BUDGET = "WithinBudget"
    NO_BUDGET = "NoBudget"
    BUDGET_EXCEEDED = "BudgetExceeded"
    DEADLINE_REQUIRED = "DeadlineRequired"
    # Queued (plan/queue.py): waiting for budget, under a BudgetPolicy whose onExhaustion is Queue
    # (plan/budget.py), or for room in the namespace's ResourceQuotas (plan/quota.py); Admitted ends it.
    BUDGET_EXHAUSTED = "BudgetExhausted"
    QUOTA_EXCEEDED = "QuotaExceeded"
    ADMITTED = "Admitted"
    WAITING_FOR_ADMISSION = "WaitingForAdmission"
    EVICTED = "Evicted"
    # Promoted (plan/promotion.py).
    PROMOTED = "Promoted"
    GATE_FAILED = "GateFailed"
    VERSION_PINNED = "VersionPinned"


class ConditionStatus(StrEnum):
    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Condition(CamelModel):
    """metav1.Condition, so generic tooling (`kubectl wait --for=condition=Succeeded`) works."""

    type: str = Field(description="Condition type: Created, Running, Restarting, Succeeded, Failed, Suspended, "
        "Queued, ResidencyCompliant, BudgetAvailable, Promoted or Stalled.")
    status: ConditionStatus = Field(description="True, False or Unknown.")
    reason: str = Field(description="Machine-readable CamelCase cause of the last transition or update.")
    message: str = Field(default="", description="Human-readable details.")
    last_transition_time: datetime = Field(description="When status last changed (not reason or message).")
    observed_generation: int | None = Field(
        default=None, ge=0, description="metadata.generation of the spec this condition was computed from."
    )


class ReplicaStatus(CamelModel):
    active: int = Field(default=0, ge=0, description="Pods of the current attempt pending or running.")
    ready: int = Field(default=0, ge=0, description="Pods of the current attempt whose trainer container is ready.")
    succeeded: int = Field(default=0, ge=0, description="Pods of the current attempt that succeeded.")
    failed: int = Field(default=0, ge=0, description="Pods of the current attempt that failed.")


class Progress(CamelModel):
    """Written by the trainer's rank 0; unknown keys are tolerated so a newer trainer does not
    break an older operator's parsing."""

    model_config = ConfigDict(extra="ignore")

    epoch: int | None = Field(default=None, description="Current epoch, 1-based.")
    total_epochs: int | None = Field(default=None, description="Epochs of the whole run.")
    step: int | None = Field(default=None, description="Optimizer steps done.")
    total_steps: int | None = Field(default=None, description="Optimizer steps of the whole run.")
    train_loss: float | None = Field(default=None, description="Mean training loss since the last update.")
    samples_per_second: float | None = Field(default=None, description="Training throughput of the whole group.")
    eta_seconds: int | None = Field(default=None, description="Estimated seconds until training ends.")
    percent: float | None = Field(default=None, description="Steps done, in percent of the whole run.")
    update_time: datetime | None = Field(default=None, description="When the trainer wrote this progress.")
    metrics: dict[str, float] | None = Field(
        default=None,
        description="Live metrics the training code reported so far (validation loss, accuracy, ...); the final "
        "ones are status.metrics.",
    )


class Checkpoint(CamelModel):
    """Written by the trainer's rank 0 (the reporting SDK) after each checkpoint it saves."""

    model_config = ConfigDict(extra="ignore")

    step: int = Field(ge=0, description="Optimizer steps done when the checkpoint was saved.")
    uri: str = Field(description="Where the checkpoint is (a file or a directory).")
    digest: str | None = Field(default=None, description="sha256:<hex> of its content (a directory: of its manifest).")
    time: datetime | None = Field(default=None, description="When it was saved.")


class ElasticStatus(CamelModel):
    """How an elastic job's group stands: its size now, and how often it re-formed."""

    workers: int = Field(
        default=0, ge=0, description="Workers of the current attempt running (or done) now: the group's size."
    )
    membership_changes: int = Field(
        default=0,
        ge=0,
        description="Times the running group lost or gained workers and re-formed in place (no whole-group "
        "restart; status.restarts does not count them).",
    )


class TrainingJobStatus(CamelModel):
    phase: Phase = Field(
        default=Phase.PENDING, description="Summary of the conditions (derived from them, never set on its own)."
    )
    conditions: list[Condition] = Field(
        default_factory=list,
        description="Latest observations: Created, Running, Restarting, Succeeded, Failed, Suspended, Queued, "
        "ResidencyCompliant, BudgetAvailable, Promoted, Stalled.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    replica_statuses: dict[str, ReplicaStatus] = Field(
        default_factory=dict, description="Pod counts of the current attempt, by role (worker)."
    )
    workers: str | None = Field(default=None, description="Ready and total workers, as ready/total, for kubectl get.")
    restarts: int = Field(
        default=0, ge=0, description="Whole-group restarts after failures so far (runPolicy.backoffLimit bounds them)."
    )
    attempt: int | None = Field(
        default=None,
        ge=0,
        description="The current attempt, its pods' kubetrain.io/attempt label: each whole-group restart and each "
        "rollout of a spec.workers edit starts the next one (absent: status.restarts, as before rollouts existed).",
    )
    worker_replacements: int | None = Field(
        default=None,
        ge=1,
        description="Workers lost and replaced alone in the current attempt (absent: none): Ray worker pods, or "
        "workers of an elastic job; one more than spec.ray.maxWorkerFailures (spec.elastic.maxRestarts) fails the "
        "attempt, which then counts against runPolicy.backoffLimit.",
    )
    elastic: ElasticStatus | None = Field(
        default=None, description="An elastic job's group (spec.elastic): its size and membership changes."
    )
    start_time: datetime | None = Field(
        default=None, description="When the operator started the workers (reset when a suspended job resumes)."
    )
    first_start_time: datetime | None = Field(
        default=None,
        description="When the operator first started the workers; set once and never cleared (suspension clears "
        "startTime, not this): the spec fields the pods read are frozen from then on.",
    )
    completion_time: datetime | None = Field(
        default=None, description="When the job finished, successfully or not."
    )
    last_reconcile_time: datetime | None = Field(
        default=None, description="When the operator last changed this status."
    )
    observed_generation: int | None = Field(
        default=None, ge=0, description="metadata.generation of the spec this status was computed from."
    )
    metrics: dict[str, float] = Field(
        default_factory=dict,
        description="Final evaluation metrics (accuracy, f1, ...) written by the trainer at the end.",
    )
    progress: Progress | None = Field(default=None, description="Live training progress written by the trainer.")
    last_checkpoint: Checkpoint | None = Field(
        default=None, description="The latest checkpoint the trainer saved: step, URI, digest and time."
    )
    cost: Cost | None = Field(default=None, description="Estimated and used GPU-hours and their price.")
    provenance: Provenance | None = Field(
        default=None, description="Data, code, configuration, submitter and outputs of the run."
    )
    model_version: str | None = Field(
        default=None, description="The ModelVersion this run was recorded as (it passed its gates)."
    )

    @property
    def current_attempt(self) -> int:
        """The attempt the job's pods belong to (status.attempt; status.restarts for a status
        written before rollouts existed)."""
        return self.attempt if self.attempt is not None else self.restarts
