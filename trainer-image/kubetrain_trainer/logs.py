"""JSON-lines logs on stderr, each naming the job and rank, so the lines of all workers can be
merged and filtered by a log pipeline without parsing free text; and the same lines archived in
the output location, `<output>/logs/rank-<N>.log` (one file per process rank), where they outlive
the pods (`kubetrain logs` reads them once the pods are gone; docs/contracts.md).

Local outputs (file://, pvc://) get each line as it is logged. Object stores take no appends: there
the lines go to a local file that `close_archive()` uploads when the process ends."""

from __future__ import annotations

import json
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from kubetrain_trainer import storage

_LOGGER = logging.getLogger("kubetrain_trainer")
# Each rank's log lines, archived beside the model (`<output>/logs/rank-N.log`).
ARCHIVE_DIR = "logs"


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


class _ArchiveHandler(logging.FileHandler):
    """The archive file; `upload_to` is the object-store URI it is copied to on close_archive()."""

    def __init__(self, path: Path, upload_to: str | None) -> None:
        super().__init__(path, mode="a", encoding="utf-8")
        self.upload_to = upload_to


def archive_uri(output_uri: str, rank: int) -> str:
    return storage.join(output_uri, ARCHIVE_DIR, f"rank-{rank}.log")


def archive(output_uri: str, rank: int) -> None:
    """Also writes this process's lines to its archive file (after configure(), whose format it
    takes); once per process (a second call replaces the first). No output location (a job
    running its own command may have none): nothing to archive to. The archive is a copy: a
    location it cannot be written to is said on stderr and the run goes on (if the model cannot
    be written there either, that fails the run, with its reason)."""
    if not output_uri:
        return
    uri = archive_uri(output_uri, rank)
    try:
        if storage.is_local(uri):
            path, upload_to = storage.local_path(uri), None
            path.parent.mkdir(parents=True, exist_ok=True)
        else:
            path, upload_to = Path(tempfile.mkdtemp(prefix="kubetrain-logs-")) / f"rank-{rank}.log", uri
        handler = _ArchiveHandler(path, upload_to)
    except OSError as error:
        warning("log_archive_unavailable", uri=uri, error=str(error))
        return
    kept = [h for h in _LOGGER.handlers if not isinstance(h, _ArchiveHandler)]
    handler.setFormatter(kept[0].formatter if kept else None)
    _LOGGER.handlers[:] = [*kept, handler]


def close_archive() -> None:
    """Flushes the archive file and, for an object store, uploads it whole (the process's last act
    of logging: lines after this stay on stderr only). A failed upload is said on stderr: the
    run's outcome stands, only its archived log is missing."""
    for handler in [h for h in _LOGGER.handlers if isinstance(h, _ArchiveHandler)]:
        _LOGGER.removeHandler(handler)
        handler.close()
        if handler.upload_to is None:
            continue
        try:
            storage.write_bytes(handler.upload_to, Path(handler.baseFilename).read_bytes())
        except Exception as error:  # any store error: fsspec's are not of one type
            warning("log_archive_failed", uri=handler.upload_to, error=f"{type(error).__name__}: {error}")


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
