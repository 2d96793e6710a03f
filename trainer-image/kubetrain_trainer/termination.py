"""The final report (docs/contracts.md): the operator reads it from the pod's termination message,
and falls back on it for status.metrics when the trainer could not reach the API server."""

from __future__ import annotations

import json
from typing import Any

from kubetrain_trainer import logs

LIMIT_BYTES = 4096


def report(
    outcome: str,
    reason: str,
    message: str,
    metrics: dict[str, float] | None = None,
    model_uri: str | None = None,
    provenance: dict[str, Any] | None = None,
) -> str:
    """The report as JSON under the kubelet's 4 KiB, cutting the message (never the metrics or the
    provenance: the operator records the digests in the model's version)."""
    document: dict[str, Any] = {"outcome": outcome, "reason": reason, "message": message, "metrics": metrics or {}}
    if model_uri:
        document["modelUri"] = model_uri
    if provenance:
        document["provenance"] = provenance
    text = json.dumps(document)
    keep = len(message)
    while len(text.encode()) >= LIMIT_BYTES and keep > 0:
        keep = keep * 3 // 4
        document["message"] = message[:keep] + "..."
        text = json.dumps(document)
    return text


def write(path: str, text: str) -> None:
    try:
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)
    except OSError as error:
        logs.warning("termination_message_not_written", path=path, error=str(error))
