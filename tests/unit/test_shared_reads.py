"""Fresh reads shared by reconciles (controller/shared_reads.py): an answer serves every
reconcile that began before its request was sent, and no reconcile that began after."""

from __future__ import annotations

import threading
import time

from kubetrain.controller.shared_reads import SharedReads


class Counter:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> int:
        self.calls += 1
        return self.calls


def test_a_read_sent_after_a_reconcile_began_serves_it() -> None:
    reads, fetch = SharedReads(), Counter()
    first, second = time.monotonic(), time.monotonic()
    assert reads.read("policies", first, fetch) == 1
    assert reads.read("policies", second, fetch) == 1, "began before the read was sent: shared"
    assert fetch.calls == 1


def test_a_reconcile_that_began_after_the_read_was_sent_reads_again() -> None:
    reads, fetch = SharedReads(), Counter()
    reads.read("policies", time.monotonic(), fetch)
    later = time.monotonic()
    assert reads.read("policies", later, fetch) == 2
    assert fetch.calls == 2


def test_keys_are_read_apart() -> None:
    reads = SharedReads()
    began = time.monotonic()
    assert reads.read(("labels", "a"), began, lambda: {"team": "a"}) == {"team": "a"}
    assert reads.read(("labels", "b"), began, lambda: {"team": "b"}) == {"team": "b"}


def test_a_reconcile_waits_for_the_read_in_flight_rather_than_sending_its_own() -> None:
    reads, release, calls = SharedReads(), threading.Event(), []

    def slow() -> str:
        calls.append("sent")
        release.wait(5)
        return "answer"

    began = time.monotonic()
    first = threading.Thread(target=reads.read, args=("policies", began, slow))
    first.start()
    while not calls:
        time.sleep(0.001)
    answers: list[str] = []
    waiting = threading.Thread(target=lambda: answers.append(reads.read("policies", began, slow)))
    waiting.start()
    time.sleep(0.05)
    release.set()
    first.join(5)
    waiting.join(5)
    assert answers == ["answer"] and calls == ["sent"]
