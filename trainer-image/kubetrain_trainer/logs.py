"""JSON-lines logs on stderr, each naming the job and rank, so the lines of all workers can be
merged and filtered by a log pipeline without parsing free text."""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

_LOGGER = logging.getLogger("kubetrain_trainer")


class _JsonFormatter(logging.Formatter):
    def __init__(self, job: str, rank: int) -> None:
        super().__init__()
        self._job = job
        self._rank = rank

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "job": self._job,
            "rank": self._rank,
            "event": record.getMessage(),
        }
        line.update(getattr(record, "fields", {}))
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def configure(namespace: str, name: str, rank: int) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_JsonFormatter(f"{namespace}/{name}", rank))
    _LOGGER.handlers[:] = [handler]
    _LOGGER.setLevel(logging.INFO)
    _LOGGER.propagate = False


def configure_unless_set(namespace: str, name: str, rank: int) -> None:
    """For the SDK inside users' code: their script may have set up this logger already."""
    if not _LOGGER.handlers:
        configure(namespace, name, rank)


def info(event: str, **fields: Any) -> None:
    _LOGGER.info(event, extra={"fields": fields})


def warning(event: str, **fields: Any) -> None:
    _LOGGER.warning(event, extra={"fields": fields})


def error(event: str, exc_info: bool = False, **fields: Any) -> None:
    _LOGGER.error(event, exc_info=exc_info, extra={"fields": fields})
