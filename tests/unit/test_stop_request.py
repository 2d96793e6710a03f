"""SIGTERM as a stop request (kubetrain_trainer.stopping): taken over from the main thread, and
left alone, without an error, where the training function runs in another thread (Ray Train)."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator

import pytest

from kubetrain_trainer.stopping import StopRequest


@pytest.fixture
def sigterm_restored() -> Iterator[None]:
    previous = signal.getsignal(signal.SIGTERM)
    yield
    signal.signal(signal.SIGTERM, previous)


def test_sigterm_in_the_main_thread_requests_a_stop(sigterm_restored: None) -> None:
    request = StopRequest().install()
    os.kill(os.getpid(), signal.SIGTERM)
    assert request.requested


def test_installing_from_another_thread_leaves_sigterm_alone(sigterm_restored: None) -> None:
    before = signal.getsignal(signal.SIGTERM)
    installed: list[StopRequest] = []
    worker = threading.Thread(target=lambda: installed.append(StopRequest().install()))
    worker.start()
    worker.join()
    assert installed and not installed[0].requested
    assert signal.getsignal(signal.SIGTERM) is before
