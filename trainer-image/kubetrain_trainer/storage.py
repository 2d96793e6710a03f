"""Reading and writing URIs: local paths directly, anything else (s3://, gs://, ...) through
fsspec, which is imported only when such a URI is used so the image needs it only for remote data.

`pvc://<claim>/<path>` is a claim the pod mounts at `/mnt/pvc/<claim>` (through `spec.podTemplate`;
residency judges the claim's storage class), so it reads and writes as a local path there."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from kubetrain_trainer.errors import InvalidConfig

PVC_MOUNT_ROOT = Path("/mnt/pvc")


def is_local(uri: str) -> bool:
    return urlparse(uri).scheme in ("", "file", "pvc")


def local_path(uri: str) -> Path:
    parsed = urlparse(uri)
    if parsed.scheme == "pvc":
        return PVC_MOUNT_ROOT / parsed.netloc / parsed.path.lstrip("/")
    return Path(parsed.path if parsed.scheme == "file" else uri)


def join(uri: str, *parts: str) -> str:
    return "/".join([uri.rstrip("/"), *parts])


def _filesystem(uri: str) -> Any:
    try:
        import fsspec
    except ImportError as error:
        raise InvalidConfig(
            f"{uri}: remote URIs need fsspec (and its protocol package, e.g. s3fs or gcsfs) installed in the "
            "trainer image"
        ) from error
    try:
        fs, _ = fsspec.core.url_to_fs(uri)
    except (ImportError, ValueError) as error:
        raise InvalidConfig(f"{uri}: no fsspec filesystem for this URI: {error}") from error
    return fs


def read_bytes(uri: str) -> bytes:
    if is_local(uri):
        return local_path(uri).read_bytes()
    return _filesystem(uri).cat_file(uri)


def exists(uri: str) -> bool:
    if is_local(uri):
        return local_path(uri).exists()
    return bool(_filesystem(uri).exists(uri))


def write_bytes(uri: str, data: bytes) -> None:
    """Writes so that a reader never sees a partial file, even if this process is killed midway:
    a temporary file in the same directory renamed over the target (object stores' single PUT
    is already atomic)."""
    if not is_local(uri):
        _filesystem(uri).pipe_file(uri, data)
        return
    path = local_path(uri)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def fetch_directory(uri: str) -> Path:
    """A remote directory (s3://, gs://) copied whole into a new local temporary directory, for
    readers that only open local files (transformers' from_pretrained)."""
    target = Path(tempfile.mkdtemp(prefix="kubetrain-fetched-"))
    _filesystem(uri).get(uri.rstrip("/") + "/", str(target), recursive=True)
    return target


def remove(uri: str) -> None:
    if is_local(uri):
        local_path(uri).unlink(missing_ok=True)
    else:
        fs = _filesystem(uri)
        if fs.exists(uri):
            fs.rm_file(uri)


def content_digest(uri: str, ignore: frozenset[str] = frozenset()) -> str:
    """`sha256:<hex>` of what `uri` holds: a file's bytes, or for a local directory (a Hugging Face
    `save_pretrained` folder, a sharded data set) the sha256 of its manifest, one line
    `<sha256 of the file>  <relative path>` per file in path order, as `sha256sum` prints it, so
    the same tree always has the same digest and any changed, added or removed file changes it.
    Top-level names in `ignore` are left out (a model card written into the folder it describes)."""
    if is_local(uri) and local_path(uri).is_dir():
        root = local_path(uri)
        lines = [
            f"{hashlib.sha256(path.read_bytes()).hexdigest()}  {path.relative_to(root).as_posix()}\n"
            for path in sorted(p for p in root.rglob("*") if p.is_file())
            if path.relative_to(root).parts[0] not in ignore
        ]
        return "sha256:" + hashlib.sha256("".join(lines).encode()).hexdigest()
    return "sha256:" + hashlib.sha256(read_bytes(uri)).hexdigest()
