"""What the planner sees of a job's children, parsed from raw API objects (pure)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from kubetrain.api.contract import ATTEMPT_LABEL, REPLICA_INDEX_LABEL, ROLE_LABEL, TRAINER_CONTAINER, WORKERS_LABEL


class Termination(BaseModel):
    model_config = ConfigDict(frozen=True)

    exit_code: int | None = Field(default=None, description="None: the kubelet did not record one.")
    reason: str | None = None
    message: str | None = Field(default=None, description="The termination message (the trainer's final report).")


# Container waiting reasons that hold a pod back until someone acts (an image, a Secret or
# ConfigMap it needs, a refused security context); ContainerCreating and PodInitializing are not.
STALLED_CONTAINER_REASONS = frozenset({
    "ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull", "CreateContainerConfigError",
    "CreateContainerError", "RunContainerError",
})


class Waiting(BaseModel):
    """Why a pod that should be running is not: the scheduler's or the kubelet's own words."""

    model_config = ConfigDict(frozen=True)

    reason: str
    message: str


class ObservedPod(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    labels: dict[str, str] = Field(default_factory=dict)
    phase: str = "Pending"
    deleting: bool = Field(default=False, description="metadata.deletionTimestamp is set.")
    ready: bool = Field(default=False, description="The trainer container is ready.")
    reason: str | None = Field(default=None, description="status.reason of the pod, e.g. Evicted.")
    message: str | None = None
    node_name: str | None = None
    terminated: Termination | None = Field(default=None, description="The trainer container's terminated state.")
    image_id: str | None = Field(
        default=None, description="The trainer container's imageID: the image the kubelet actually ran."
    )
    conditions: dict[str, str] = Field(default_factory=dict, description="Pod condition type -> status.")
    waiting: Waiting | None = Field(
        default=None, description="Unschedulable, or a stalled trainer container (STALLED_CONTAINER_REASONS)."
    )

    @property
    def role(self) -> str | None:
        return self.labels.get(ROLE_LABEL)

    @property
    def index(self) -> int | None:
        return _int_label(self.labels.get(REPLICA_INDEX_LABEL))

    @property
    def attempt(self) -> int | None:
        return _int_label(self.labels.get(ATTEMPT_LABEL))

    @property
    def workers(self) -> int | None:
        """spec.workers the pod was rendered for (absent on pods of older operators)."""
        return _int_label(self.labels.get(WORKERS_LABEL))

    @property
    def finished(self) -> bool:
        return self.phase in ("Succeeded", "Failed")

    @classmethod
    def from_k8s(cls, pod: dict[str, Any]) -> ObservedPod:
        meta, spec, status = pod.get("metadata") or {}, pod.get("spec") or {}, pod.get("status") or {}
        container = _trainer_status(status.get("containerStatuses") or [])
        terminated = ((container or {}).get("state") or {}).get("terminated")
        return cls(
            name=meta["name"],
            labels=meta.get("labels") or {},
            phase=status.get("phase") or "Pending",
            deleting=meta.get("deletionTimestamp") is not None,
            ready=bool((container or {}).get("ready")),
            reason=status.get("reason"),
            message=status.get("message"),
            node_name=spec.get("nodeName"),
            terminated=Termination(
                exit_code=_int_or_none(terminated.get("exitCode")),
                reason=terminated.get("reason"),
                message=terminated.get("message"),
            )
            if terminated
            else None,
            conditions={c["type"]: c.get("status", "Unknown") for c in status.get("conditions") or []},
            image_id=(container or {}).get("imageID") or None,
            waiting=_waiting(status, container),
        )


class Observed(BaseModel):
    model_config = ConfigDict(frozen=True)

    pods: list[ObservedPod] = Field(default_factory=list)
    service_names: frozenset[str] = Field(default_factory=frozenset)

    @classmethod
    def from_k8s(cls, pods: list[dict[str, Any]], services: list[dict[str, Any]]) -> Observed:
        """`pods` and `services` are the job's children as the API returns them (already filtered
        to those the job controls)."""
        return cls(
            pods=sorted((ObservedPod.from_k8s(p) for p in pods), key=lambda p: p.name),
            service_names=frozenset(s["metadata"]["name"] for s in services),
        )


def _trainer_status(statuses: list[dict[str, Any]]) -> dict[str, Any] | None:
    named = [s for s in statuses if s.get("name") == TRAINER_CONTAINER]
    candidates = named or statuses
    return candidates[0] if candidates else None


def _waiting(status: dict[str, Any], container: dict[str, Any] | None) -> Waiting | None:
    scheduled = next((c for c in status.get("conditions") or [] if c.get("type") == "PodScheduled"), None)
    if scheduled is not None and scheduled.get("status") == "False" and scheduled.get("reason") == "Unschedulable":
        return Waiting(reason="Unschedulable", message=scheduled.get("message") or "no node fits the pod")
    state = ((container or {}).get("state") or {}).get("waiting") or {}
    if state.get("reason") in STALLED_CONTAINER_REASONS:
        return Waiting(reason=state["reason"], message=state.get("message") or state["reason"])
    return None


def _int_label(value: str | None) -> int | None:
    return int(value) if value is not None and value.isdigit() else None


def _int_or_none(value: Any) -> int | None:
    return int(value) if isinstance(value, int) else None
