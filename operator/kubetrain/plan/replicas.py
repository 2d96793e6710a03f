"""Pod counts of the current attempt, for status.replicaStatuses and the Workers column."""

from __future__ import annotations

from kubetrain.api.status import ReplicaStatus
from kubetrain.plan.observed import ObservedPod


def replica_status(pods: list[ObservedPod]) -> ReplicaStatus:
    return ReplicaStatus(
        active=sum(1 for p in pods if p.phase in ("Pending", "Running", "Unknown") and not p.deleting),
        ready=sum(1 for p in pods if p.phase == "Running" and p.ready and not p.deleting),
        succeeded=sum(1 for p in pods if p.phase == "Succeeded"),
        failed=sum(1 for p in pods if p.phase == "Failed"),
    )


def workers_column(status: ReplicaStatus, total: int) -> str:
    return f"{status.ready}/{total}"
