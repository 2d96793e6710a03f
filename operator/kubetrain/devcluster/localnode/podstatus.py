"""Process lifecycle -> pod status documents (pure), shaped like the kubelet's."""

from __future__ import annotations

import datetime as dt
from typing import Any

MAX_MESSAGE_BYTES = 4096


def rfc3339(now: dt.datetime) -> str:
    """Kubernetes timestamps: UTC, second precision."""
    return now.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _conditions(now: dt.datetime, ready: bool, reason: str = "") -> list[dict[str, Any]]:
    ts = rfc3339(now)
    flag = "True" if ready else "False"
    return [
        {"type": "PodScheduled", "status": "True", "lastTransitionTime": ts},
        {"type": "Initialized", "status": "True", "lastTransitionTime": ts},
        {"type": "Ready", "status": flag, "lastTransitionTime": ts, "reason": reason or None},
        {"type": "ContainersReady", "status": flag, "lastTransitionTime": ts, "reason": reason or None},
    ]


def running_status(pod: dict[str, Any], started: dt.datetime) -> dict[str, Any]:
    container = pod["spec"]["containers"][0]
    return {
        "phase": "Running",
        "podIP": "127.0.0.1",
        "podIPs": [{"ip": "127.0.0.1"}],
        "hostIP": "127.0.0.1",
        "startTime": rfc3339(started),
        "conditions": _conditions(started, ready=True),
        "containerStatuses": [
            {
                "name": container["name"],
                "image": container.get("image", ""),
                "imageID": "",
                "ready": True,
                "started": True,
                "restartCount": 0,
                "state": {"running": {"startedAt": rfc3339(started)}},
            }
        ],
    }


def termination_message(
    written: str | None, log_tail: str, policy: str, exit_code: int
) -> str:
    """What the kubelet would report: the file's content, or (FallbackToLogsOnError, on failure,
    when the file is empty) the end of the log; cut to the kubelet's 4 KiB."""
    message = written or ""
    if not message and policy == "FallbackToLogsOnError" and exit_code != 0:
        message = log_tail
    return message.encode()[-MAX_MESSAGE_BYTES:].decode(errors="ignore")


def terminated_status(
    pod: dict[str, Any],
    started: dt.datetime,
    finished: dt.datetime,
    exit_code: int,
    message: str,
) -> dict[str, Any]:
    container = pod["spec"]["containers"][0]
    succeeded = exit_code == 0
    reason = "Completed" if succeeded else "Error"
    return {
        "phase": "Succeeded" if succeeded else "Failed",
        "podIP": "127.0.0.1",
        "podIPs": [{"ip": "127.0.0.1"}],
        "hostIP": "127.0.0.1",
        "startTime": rfc3339(started),
        "conditions": _conditions(finished, ready=False, reason="PodCompleted" if succeeded else "PodFailed"),
        "containerStatuses": [
            {
                "name": container["name"],
                "image": container.get("image", ""),
                "imageID": "",
                "ready": False,
                "started": False,
                "restartCount": 0,
                "state": {
                    "terminated": {
                        "exitCode": exit_code,
                        "reason": reason,
                        "message": message or None,
                        "startedAt": rfc3339(started),
                        "finishedAt": rfc3339(finished),
                    }
                },
            }
        ],
    }


def launch_failed_status(pod: dict[str, Any], now: dt.datetime, message: str) -> dict[str, Any]:
    """A pod the node cannot run fails at once, like a container that cannot be created."""
    status = terminated_status(pod, now, now, 128, message)
    status["containerStatuses"][0]["state"]["terminated"]["reason"] = "StartError"
    return status
