"""Shared fixtures: one real local control plane per test session.

Set KUBETRAIN_TEST_STATE_DIR to the state directory of a cluster you started yourself
(`kubetrain dev up`, default .kubetrain/dev) to reuse it instead of a fresh one; it is then left
running.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import kubernetes
import pytest

from kubetrain.devcluster.cluster import LocalCluster
from tests.helpers import admin_client, fresh_namespace
from tests.operator_process import WEBHOOK_CONFIGURATION, OperatorProcess


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    reuse = os.environ.get("KUBETRAIN_TEST_STATE_DIR")
    if reuse:
        existing = LocalCluster(Path(reuse))
        if not existing.running():
            pytest.fail(f"KUBETRAIN_TEST_STATE_DIR={reuse} has no running cluster")
        yield existing
        return
    local = LocalCluster(tmp_path_factory.mktemp("cluster"))
    try:
        local.start()
        yield local
    finally:
        local.stop()


@pytest.fixture(scope="session")
def api(cluster: LocalCluster) -> Iterator[kubernetes.client.ApiClient]:
    """An API client authenticated as the cluster admin."""
    with admin_client(cluster.kubeconfig) as client:
        yield client


@pytest.fixture
def namespace(api: kubernetes.client.ApiClient, request: pytest.FixtureRequest) -> Iterator[str]:
    with fresh_namespace(api, request.node.name) as name:
        yield name


@pytest.fixture(scope="session")
def crds(cluster: LocalCluster) -> Path:
    """The repo's CRDs, installed the way users install them (server-side apply)."""
    crd_dir = Path(__file__).resolve().parent.parent / "crds"
    cluster.kubectl("apply", "--server-side", "-f", str(crd_dir))
    cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s", "-f", str(crd_dir))
    return crd_dir


@pytest.fixture(scope="session")
def session_operators() -> list[OperatorProcess]:
    """The session's shared operators, once started, so a test can pause them (sole_operator)."""
    return []


@pytest.fixture(scope="session")
def operator(
    cluster: LocalCluster,
    crds: Path,
    tmp_path_factory: pytest.TempPathFactory,
    session_operators: list[OperatorProcess],
) -> Iterator[OperatorProcess]:
    """One operator subprocess for the session; tests that restart it leave it running."""
    proc = OperatorProcess(cluster.kubeconfig, tmp_path_factory.mktemp("operator") / "operator.log")
    proc.start()
    session_operators.append(proc)
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def sole_operator(cluster: LocalCluster, session_operators: list[OperatorProcess]) -> Iterator[None]:
    """For tests that run an operator of their own (other credentials or flags): the session's
    operator is stopped meanwhile, so only theirs reconciles, and restarted afterwards, which
    registers its webhook again. Without a session operator to restart, the webhook
    configuration the tests' operator left (persistent, failurePolicy Fail) is removed."""
    paused = [proc for proc in session_operators if proc.running()]
    for proc in paused:
        proc.stop()
    try:
        yield
    finally:
        for proc in paused:
            proc.start()
        if not paused:
            cluster.kubectl(
                "delete", "validatingwebhookconfiguration,mutatingwebhookconfiguration", WEBHOOK_CONFIGURATION,
                "--ignore-not-found",
            )
