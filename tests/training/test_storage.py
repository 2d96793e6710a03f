"""Output writes are atomic locally and go through fsspec for other schemes."""

from __future__ import annotations

import uuid
from pathlib import Path

from kubetrain_trainer import storage


def test_local_write_replaces_atomically_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = f"file://{tmp_path}/deep/dir/file.bin"
    storage.write_bytes(target, b"one")
    storage.write_bytes(target, b"two")
    assert storage.read_bytes(target) == b"two"
    assert [p.name for p in (tmp_path / "deep" / "dir").iterdir()] == ["file.bin"]
    storage.remove(target)
    assert not storage.exists(target)


def test_other_schemes_go_through_fsspec() -> None:
    # fsspec is a dependency of the operator (residency derives scheme aliases from it), so the
    # test environment always has it.
    uri = f"memory://kubetrain-test-{uuid.uuid4().hex}/checkpoints/latest"
    storage.write_bytes(uri, b"step-5.pt")
    assert storage.exists(uri) and storage.read_bytes(uri) == b"step-5.pt"
    storage.remove(uri)
    assert not storage.exists(uri)
