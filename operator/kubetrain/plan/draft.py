"""The status and actions one plan() call is building, and how they become a Plan."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from kubetrain.api.budget import Cost
from kubetrain.api.contract import WORKER_ROLE
from kubetrain.api.events import EventType
from kubetrain.api.job import TrainingJob
from kubetrain.api.provenance import Provenance
from kubetrain.api.status import Condition, ConditionType, ElasticStatus, Phase, ReplicaStatus, TrainingJobStatus
from kubetrain.plan import conditions as cond
from kubetrain.plan.replicas import workers_column


class Event(BaseModel):
    model_config = ConfigDict(frozen=True)

    type: EventType
    reason: str
    message: str


class Plan(BaseModel):
    """Everything one reconcile should do. Applying it and planning again on the result yields
    the same status and no further actions (until the cluster or the clock moves)."""

    model_config = ConfigDict(frozen=True)

    create: list[dict[str, Any]] = Field(default_factory=list, description="Objects to create unless they exist.")
    delete_pods: list[str] = Field(default_factory=list, description="Pods to delete, by name.")
    status: TrainingJobStatus = Field(description="The job's whole new status.")
    events: list[Event] = Field(default_factory=list)
    requeue_after: float | None = Field(default=None, description="Plan again after this many seconds.")
    delete_job: bool = Field(default=False, description="ttlSecondsAfterFinished has expired.")
    workload_status: dict[str, Any] | None = Field(
        default=None, description="A merge patch of the job's Kueue Workload status (plan/kueue.py)."
    )


_WARNING_PHASES = frozenset({Phase.FAILED, Phase.RESTARTING})
_PHASE_CONDITION = {
    Phase.FAILED: ConditionType.FAILED,
    Phase.SUCCEEDED: ConditionType.SUCCEEDED,
    Phase.SUSPENDED: ConditionType.SUSPENDED,
    Phase.QUEUED: ConditionType.QUEUED,
    Phase.RESTARTING: ConditionType.RESTARTING,
    Phase.RUNNING: ConditionType.RUNNING,
    Phase.STARTING: ConditionType.CREATED,
}


@dataclass
class Draft:
    """Mutable only inside one plan() call; plan() starts each call from the job's status."""

    job: TrainingJob
    now: datetime
    conditions: list[Condition]
    restarts: int
    attempt: int
    worker_replacements: int
    elastic: ElasticStatus | None
    start_time: datetime | None
    first_start_time: datetime | None
    completion_time: datetime | None
    create: list[dict[str, Any]] = field(default_factory=list)
    delete_pods: list[str] = field(default_factory=list)
    requeue_after: float | None = None
    delete_job: bool = False
    workload_status: dict[str, Any] | None = None
    events: list[Event] = field(default_factory=list)
    """Events of actions no status field records (a residency finding, a Ray worker replaced alone)."""
    cost: Cost | None = None
    provenance: Provenance | None = None
    model_version: str | None = None

    @classmethod
    def start(cls, job: TrainingJob, now: datetime) -> Draft:
        status = job.status
        return cls(
            job=job,
            now=now,
            conditions=list(status.conditions),
            restarts=status.restarts,
            attempt=status.current_attempt,
            worker_replacements=status.worker_replacements or 0,
            elastic=status.elastic,
            start_time=status.start_time,
            # A status written before firstStartTime existed: its startTime is the best record.
            first_start_time=status.first_start_time or status.start_time,
            completion_time=status.completion_time,
            cost=status.cost,
            provenance=status.provenance,
            model_version=status.model_version,
        )

    def is_true(self, type_: ConditionType) -> bool:
        return cond.is_true(self.conditions, type_)

    def set(self, type_: ConditionType, status: bool, reason: str, message: str) -> None:
        generation = self.job.metadata.generation
        self.conditions = cond.set_condition(self.conditions, type_, status, reason, message, self.now, generation)

    def close(self, type_: ConditionType, reason: str, message: str) -> None:
        generation = self.job.metadata.generation
        self.conditions = cond.set_false_if_true(self.conditions, type_, reason, message, self.now, generation)

    def requeue_within(self, seconds: float) -> None:
        """Plan again within `seconds` at the latest; an earlier wake-up already asked for stays."""
        self.requeue_after = seconds if self.requeue_after is None else min(self.requeue_after, seconds)

    def next_attempt(self) -> None:
        """A whole-group restart, a rollout or an eviction: a new attempt, whose group has lost no
        worker yet and has no members (the membership changes of the job's life stay)."""
        self.attempt += 1
        self.worker_replacements = 0
        self.group_stopped()

    def group_stopped(self) -> None:
        """The group's pods are going: an elastic group has no running members any more."""
        if self.elastic is not None:
            self.elastic = self.elastic.model_copy(update={"workers": 0})

    def delete(self, names: list[str]) -> None:
        self.delete_pods.extend(n for n in names if n not in self.delete_pods)

    def finished(self) -> bool:
        return self.is_true(ConditionType.SUCCEEDED) or self.is_true(ConditionType.FAILED)

    def to_plan(self, replicas: dict[str, ReplicaStatus], metrics: dict[str, float]) -> Plan:
        old = self.job.status
        status = TrainingJobStatus(
            phase=cond.derive_phase(self.conditions),
            conditions=self.conditions,
            replica_statuses=replicas,
            workers=workers_column(replicas.get(WORKER_ROLE, ReplicaStatus()), self.job.spec.workers),
            restarts=self.restarts,
            attempt=self.attempt if self.attempt != self.restarts or old.attempt is not None else None,
            worker_replacements=self.worker_replacements or None,
            elastic=self.elastic,
            start_time=self.start_time,
            first_start_time=self.first_start_time,
            completion_time=self.completion_time,
            last_reconcile_time=old.last_reconcile_time,
            observed_generation=self.job.metadata.generation,
            metrics=metrics,
            progress=old.progress,
            last_checkpoint=old.last_checkpoint,
            cost=self.cost,
            provenance=self.provenance,
            model_version=self.model_version,
        )
        if _operator_fields(status) != _operator_fields(old):
            status = status.model_copy(update={"last_reconcile_time": self.now})
        return Plan(
            create=self.create,
            delete_pods=self.delete_pods,
            status=status,
            events=self.events + self._events(status),
            requeue_after=self.requeue_after,
            delete_job=self.delete_job,
            workload_status=self.workload_status,
        )

    def _events(self, status: TrainingJobStatus) -> list[Event]:
        old = self.job.status
        if status.phase != old.phase:
            return [_phase_event(status)]
        if status.restarts > old.restarts:
            restarting = cond.find(status.conditions, ConditionType.RESTARTING)
            message = restarting.message if restarting else ""
            return [Event(type=EventType.WARNING, reason=Phase.RESTARTING.value, message=message)]
        return []


def _phase_event(status: TrainingJobStatus) -> Event:
    type_ = _PHASE_CONDITION.get(status.phase)
    condition = cond.find(status.conditions, type_) if type_ else None
    message = condition.message if condition else "waiting for every worker pod to be created"
    kind = EventType.WARNING if status.phase in _WARNING_PHASES else EventType.NORMAL
    return Event(type=kind, reason=status.phase.value, message=message)


def _operator_fields(status: TrainingJobStatus) -> dict[str, Any]:
    return status.model_dump(exclude={"last_reconcile_time", "progress", "last_checkpoint"})
