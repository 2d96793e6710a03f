"""The operator's API client: its credentials, its user agent, and enough pooled connections for
everything that talks to the API at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubetrain.controller.informer import PLURALS
from kubetrain.controller.requeue import WAKE_UP_WORKERS
from kubetrain.controller.run import USER_AGENT, api_client, api_connections

KUBECONFIG = """
apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:6443", insecure-skip-tls-verify: true}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
"""


def test_the_client_keeps_as_many_connections_as_asked_from_a_kubeconfig(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECONFIG", "unused")
    path = tmp_path / "kubeconfig"
    path.write_text(KUBECONFIG)
    client = api_client(path, 37)
    assert client.configuration.host == "https://127.0.0.1:6443"
    assert client.user_agent == USER_AGENT
    assert client.rest_client.pool_manager.connection_pool_kw["maxsize"] == 37


@pytest.mark.parametrize("namespaces", [0, 1, 5])
def test_every_reconcile_worker_and_informer_watch_has_a_connection(namespaces: int) -> None:
    watches = len(PLURALS) * max(namespaces, 1)
    assert api_connections(namespaces) > WAKE_UP_WORKERS + watches
