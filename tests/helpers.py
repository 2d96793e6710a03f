"""Small helpers shared by the cluster tests."""

from __future__ import annotations

import hashlib
import re
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import kubernetes

T = TypeVar("T")


def wait_for(predicate: Callable[[], T], timeout: float = 30.0, what: str = "condition") -> T:
    """Polls `predicate` until it returns something truthy, and returns that."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.2)


@contextmanager
def admin_client(kubeconfig: Path) -> Iterator[kubernetes.client.ApiClient]:
    """An API client with the cluster admin's kubeconfig, closed afterwards."""
    client = kubernetes.config.new_client_from_config(config_file=str(kubeconfig))
    try:
        yield client
    finally:
        client.close()


@contextmanager
def fresh_namespace(api: kubernetes.client.ApiClient, test_name: str, prefix: str = "t") -> Iterator[str]:
    """A namespace named after the test (unique), deleted afterwards, so tests never see each
    other's objects."""
    core = kubernetes.client.CoreV1Api(api)
    name = f"{prefix}-" + re.sub(r"[^a-z0-9-]", "-", test_name.lower())[:40].strip("-") + "-" + uuid.uuid4().hex[:5]
    core.create_namespace({"metadata": {"name": name}})
    try:
        yield name
    finally:
        core.delete_namespace(name)


def file_digest(path: Path) -> str:
    """A file's digest as the trainer and the SDK report it (status, provenance): `sha256:<hex>`."""
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
