"""Which worker of the current attempt broke the group, and whether retrying can help."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from kubetrain.status.observed import ObservedPod
from kubetrain.status.report import parse_report


class Failure(BaseModel):
    model_config = ConfigDict(frozen=True)

    pod: str
    reason: str
    message: str
    permanent: bool = False


def failure_of(pod: ObservedPod) -> Failure | None:
    """A pod counts as failed when it Failed, or when it is being deleted before it succeeded:
    within a running attempt the operator never deletes pods, so someone else (eviction, node
    loss, a user) did."""
    if pod.phase == "Failed":
        return _failed(pod)
    if pod.deleting and pod.phase != "Succeeded":
        why = pod.reason or "deleted"
        return Failure(pod=pod.name, reason="WorkerDeleted", message=f"worker {pod.name} was {why} before it finished")
    return None


def missing(name: str) -> Failure:
    return Failure(pod=name, reason="WorkerLost", message=f"worker {name} disappeared after it was created")


def first_failure(failures: list[Failure]) -> Failure | None:
    """The root cause among simultaneous failures: a trainer's permanent verdict first, since
    the other workers then typically fail only because their peer left the rendezvous."""
    return next((f for f in failures if f.permanent), failures[0] if failures else None)


def _failed(pod: ObservedPod) -> Failure:
    terminated = pod.terminated
    report = parse_report(terminated.message if terminated else None)
    if report is not None and report.reason:
        return Failure(
            pod=pod.name,
            reason=report.reason,
            message=f"worker {pod.name} failed: {report.message or report.reason}",
            permanent=report.permanent,
        )
    if terminated is not None:
        detail = f"exit code {terminated.exit_code}" + (f" ({terminated.reason})" if terminated.reason else "")
        return Failure(pod=pod.name, reason="WorkerFailed", message=f"worker {pod.name} failed: {detail}")
    detail = pod.reason or "no container status"
    return Failure(pod=pod.name, reason="WorkerFailed", message=f"worker {pod.name} failed: {detail}")
