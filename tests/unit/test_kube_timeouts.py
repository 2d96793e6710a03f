"""Every request the operator makes is bounded: an API server (or a path to it) that accepts a
connection and then says nothing must not hold a reconcile or an admission review for ever."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import kubernetes
import pytest
import urllib3

from kubetrain.controller.kube import Kube
from kubetrain.controller.metrics import OperatorMetrics


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A server that accepts connections and never answers."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    thread.join()
    for connection in accepted:
        connection.close()
    listener.close()


@pytest.mark.timeout(30)
def test_a_request_to_a_server_that_never_answers_fails_after_the_read_timeout(silent_server: str) -> None:
    configuration = kubernetes.client.Configuration(host=silent_server)
    metrics = OperatorMetrics()
    kube = Kube(kubernetes.client.ApiClient(configuration), metrics, request_timeout=(1.0, 0.5))
    started = time.monotonic()
    with pytest.raises(urllib3.exceptions.HTTPError, match="Read timed out"):
        kube.get_job("team", "resnet")
    assert time.monotonic() - started < 10  # urllib3 retries a GET a few times, each bounded
    assert metrics.api_errors.labels("get", "trainingjobs")._value.get() == 1

