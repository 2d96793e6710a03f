"""Which worker of the current attempt broke the group, and whether retrying can help."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict

from kubetrain.api.contract import HEAD_ROLE, WORKER_ROLE
from kubetrain.api.status import Reason
from kubetrain.plan.observed import ObservedPod
from kubetrain.plan.report import parse_report

# A Python exception line with its message ("RuntimeError: ...", "torch.distributed.DistNetworkError:
# ..."). torchrun and other launchers print their own summary after it, whose "ChildFailedError:"
# names no cause.
_EXCEPTION_LINE = re.compile(r"^[\w.]*(Error|Exception)\b: *\S")
LOG_LINE_LIMIT = 300


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
        return Failure(
            pod=pod.name, reason=Reason.WORKER_DELETED, message=f"{_who(pod)} {pod.name} was {why} before it finished"
        )
    return None


def missing(name: str, role: str = WORKER_ROLE) -> Failure:
    return Failure(
        pod=name, reason=Reason.WORKER_LOST, message=f"{_noun(role)} {name} disappeared after it was created"
    )


def _noun(role: str | None) -> str:
    return "Ray head" if role == HEAD_ROLE else "worker"


def _who(pod: ObservedPod) -> str:
    return _noun(pod.role)


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
            message=f"{_who(pod)} {pod.name} failed: {report.message or report.reason}",
            permanent=report.permanent,
        )
    if terminated is not None:
        code = "unknown" if terminated.exit_code is None else terminated.exit_code
        detail = f"exit code {code}" + (f" ({terminated.reason})" if terminated.reason else "")
        line = cause_in_log(terminated.message)
        if line:
            detail += f": {line}"
        return Failure(pod=pod.name, reason=Reason.WORKER_FAILED, message=f"{_who(pod)} {pod.name} failed: {detail}")
    detail = pod.reason or "no container status"
    return Failure(pod=pod.name, reason=Reason.WORKER_FAILED, message=f"{_who(pod)} {pod.name} failed: {detail}")


def cause_in_log(log_tail: str | None) -> str | None:
    """The line of a crashed container's log tail (its termination message under
    FallbackToLogsOnError) that most likely says why: the last exception line, else the last line.
    The status keeps it because a group restart deletes the pods, and their logs with them."""
    lines = [line.strip() for line in (log_tail or "").splitlines() if line.strip()]
    if not lines:
        return None
    line = next((line for line in reversed(lines) if _EXCEPTION_LINE.match(line)), lines[-1])
    return line if len(line) <= LOG_LINE_LIMIT else line[: LOG_LINE_LIMIT - 3] + "..."
