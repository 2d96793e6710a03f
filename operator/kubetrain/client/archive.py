"""Reading what a job's trainer archived in its output location (api/history.py): the metric
history and the processes' logs, from wherever the user's machine can reach spec.output.uri.

- `file://` (the dev cluster's local node, a shared filesystem): the path, read here directly;
- object stores (`s3://`, `gs://`, ...): through fsspec with the store's protocol package (s3fs,
  gcsfs) and the user's own credentials, as the trainer writes them;
- `pvc://`: a claim mounted in the job's pods only, so not readable from here; the error says
  how to get at it.
A location that holds nothing (yet) is a LookupError naming it, as a job without pods is for
client/logs.py, so callers report both alike."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from kubetrain.api.history import HISTORY_FILE, LOGS_DIR, MetricRecord, log_rank, parse_history
from kubetrain.api.job import TrainingJob


class ArchiveUnreadable(LookupError):
    """The output location cannot be read from here, or does not hold the file."""


def join(uri: str, *parts: str) -> str:
    return "/".join([uri.rstrip("/"), *parts])


def output_uri(job: TrainingJob) -> str:
    if job.spec.output is None:
        raise ArchiveUnreadable(
            f"TrainingJob {job.metadata.namespace}/{job.metadata.name} has no spec.output: "
            "its trainer archived no history or logs"
        )
    return job.spec.output.uri


def _local(uri: str) -> Path | None:
    """The path of a file:// URI (or a bare path); None for other schemes. pvc:// is refused."""
    parsed = urlparse(uri)
    if parsed.scheme == "pvc":
        raise ArchiveUnreadable(
            f"{uri}: a PersistentVolumeClaim is mounted in the job's pods, not on this machine; read it from a pod "
            f"that mounts claim {parsed.netloc!r} (kubectl cp), or write outputs to an object store"
        )
    if parsed.scheme in ("", "file"):
        return Path(parsed.path if parsed.scheme else uri)
    return None


def _filesystem(uri: str) -> Any:
    """fsspec's filesystem for a remote URI (fsspec is untyped: Any)."""
    import fsspec

    try:
        fs, _ = fsspec.core.url_to_fs(uri)
    except (ImportError, ValueError) as exc:
        raise ArchiveUnreadable(f"{uri}: cannot open this store here ({exc}); install its fsspec package") from exc
    return fs


def read_bytes(uri: str) -> bytes:
    path = _local(uri)
    try:
        if path is not None:
            return path.read_bytes()
        data: bytes = _filesystem(uri).cat_file(uri)
        return data
    except FileNotFoundError:
        raise ArchiveUnreadable(f"{uri} does not exist (yet): the trainer writes it as training goes") from None
    except OSError as exc:  # permissions, a store's refusal (credentials, network)
        raise ArchiveUnreadable(f"{uri}: cannot be read here: {exc}") from exc


def log_files(output: str) -> dict[int, str]:
    """Rank -> URI of each archived log file under `<output>/logs/`."""
    folder = join(output, LOGS_DIR)
    path = _local(folder)
    if path is not None:
        names = [child.name for child in path.glob("*")] if path.is_dir() else []
    else:
        names = [str(found).rsplit("/", 1)[-1] for found in _filesystem(folder).glob(join(folder, "*"))]
    ranks = {rank: join(folder, name) for name in names if (rank := log_rank(name)) is not None}
    return dict(sorted(ranks.items()))


def history(job: TrainingJob) -> list[MetricRecord]:
    return parse_history(read_bytes(join(output_uri(job), HISTORY_FILE)).decode())


def logs(job: TrainingJob, rank: int | None) -> tuple[str, dict[int, str]]:
    """The logs folder's URI and each archived file's text by rank (one rank when given)."""
    output = output_uri(job)
    files = {r: uri for r, uri in log_files(output).items() if rank is None or r == rank}
    folder = join(output, LOGS_DIR) + "/"
    if not files:
        which = f"of rank {rank} " if rank is not None else ""
        raise ArchiveUnreadable(f"no archived logs {which}in {folder}")
    return folder, {r: read_bytes(uri).decode(errors="replace") for r, uri in files.items()}
