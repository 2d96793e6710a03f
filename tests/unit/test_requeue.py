"""The Requeuer with real threads; waits are on events, never on sleeps alone. Where a test relies
on two wake-ups' order, or on doing something before a wake-up is due, they are MARGIN apart: far
more than the scheduling jitter of a loaded 2-core machine. Order tests use one worker, so wake-ups
run in the order they fall due."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from kubetrain.controller.requeue import Requeuer


class Woken:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.threads: set[str] = set()
        self.event = threading.Event()
        self._lock = threading.Lock()

    def __call__(self, namespace: str, name: str) -> None:
        with self._lock:
            self.calls.append((namespace, name))
            self.threads.add(threading.current_thread().name)
        self.event.set()

    def wait_for(self, count: int, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.calls) < count:
            assert time.monotonic() < deadline, f"only {self.calls} woken"
            self.event.wait(0.05)
            self.event.clear()


@pytest.fixture
def woken() -> Woken:
    return Woken()


MARGIN = 1.0


@pytest.fixture
def requeuer(woken: Woken) -> Iterator[Requeuer]:
    queue = Requeuer(woken, workers=2)
    yield queue
    queue.cancel_all()


@pytest.fixture
def serial(woken: Woken) -> Iterator[Requeuer]:
    """One worker: a wake-up that falls due earlier has run before a later one starts."""
    queue = Requeuer(woken, workers=1)
    yield queue
    queue.cancel_all()


def test_wake_ups_come_in_due_order(serial: Requeuer, woken: Woken) -> None:
    serial.schedule("ns", "late", MARGIN)
    serial.schedule("ns", "early", 0.0)
    woken.wait_for(2)
    assert woken.calls == [("ns", "early"), ("ns", "late")]
    assert serial.pending() == 0


def test_the_earliest_wake_up_wins(serial: Requeuer, woken: Woken) -> None:
    serial.schedule("ns", "job", 30)
    serial.schedule("ns", "job", 0.0)  # an event while a deadline is pending
    serial.schedule("ns", "job", 20)  # the reconcile's next deadline does not delay it
    woken.wait_for(1)
    serial.schedule("ns", "marker", 0.0)
    woken.wait_for(2)
    assert woken.calls == [("ns", "job"), ("ns", "marker")], "one wake-up, the earliest"
    assert serial.pending() == 0


def test_events_in_a_burst_coalesce(serial: Requeuer, woken: Woken) -> None:
    for _ in range(10):
        serial.schedule("ns", "job", MARGIN)
    assert serial.pending() == 1
    serial.schedule("ns", "marker", 2 * MARGIN)
    woken.wait_for(2)
    assert woken.calls == [("ns", "job"), ("ns", "marker")]


def test_cancel(serial: Requeuer, woken: Woken) -> None:
    serial.schedule("ns", "cancelled", MARGIN)
    serial.cancel("ns", "cancelled")
    serial.schedule("ns", "marker", 1.5 * MARGIN)  # due after the cancelled one would have been
    woken.wait_for(1)
    assert woken.calls == [("ns", "marker")]


def test_many_jobs_share_a_bounded_pool(requeuer: Requeuer, woken: Woken) -> None:
    before = threading.active_count()
    for index in range(200):
        requeuer.schedule("ns", f"job-{index}", 0.0)
    woken.wait_for(200)
    assert sorted(woken.calls) == sorted(("ns", f"job-{index}") for index in range(200))
    assert len(woken.threads) <= 2
    assert threading.active_count() <= before + 2


def test_a_failing_wake_up_does_not_stop_the_others(caplog: pytest.LogCaptureFixture) -> None:
    woken = Woken()

    def callback(namespace: str, name: str) -> None:
        if name == "broken":
            raise RuntimeError("boom")
        woken(namespace, name)

    queue = Requeuer(callback, workers=1)
    try:
        queue.schedule("ns", "broken", 0.0)
        queue.schedule("ns", "fine", 0.05)
        woken.wait_for(1)
    finally:
        queue.cancel_all()
    assert woken.calls == [("ns", "fine")]
    assert "wake-up of ns/broken failed" in caplog.text


def test_cancel_all_stops_pending_wake_ups(woken: Woken) -> None:
    queue = Requeuer(woken, workers=1)
    queue.schedule("ns", "job", MARGIN)
    queue.cancel_all()
    time.sleep(1.5 * MARGIN)  # past the time it was due: nothing to wait on for what must not happen
    assert woken.calls == []


def test_a_paused_requeuer_keeps_its_wake_ups_and_runs_them_on_resume(woken: Woken) -> None:
    queue = Requeuer(woken, workers=1, paused=True)
    try:
        queue.schedule("ns", "due", 0.0)
        queue.schedule("ns", "deadline", 0.05)
        time.sleep(0.3)
        assert woken.calls == [], "a standby's timers fire nothing"
        assert queue.pending() == 2
        queue.resume()
        woken.wait_for(2)
        assert sorted(woken.calls) == [("ns", "deadline"), ("ns", "due")]
        queue.pause()
        queue.schedule("ns", "after-pause", 0.0)
        time.sleep(0.2)
        assert len(woken.calls) == 2
    finally:
        queue.cancel_all()


def test_cancel_all_returns_once_running_wake_ups_ended() -> None:
    started, release = threading.Event(), threading.Event()
    finished: list[str] = []

    def slow(namespace: str, name: str) -> None:
        started.set()
        release.wait(5)
        finished.append(name)

    queue = Requeuer(slow, workers=1)
    queue.schedule("ns", "running", 0.0)
    assert started.wait(5)
    threading.Timer(0.2, release.set).start()
    queue.cancel_all()
    assert finished == ["running"], "nothing of a stopping leader still acts once cancel_all returns"
