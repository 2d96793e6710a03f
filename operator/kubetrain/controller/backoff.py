"""Retry delays per job that grow with consecutive failures, so a job the API server keeps
refusing, or an API server that keeps failing, is retried ever less often instead of in a hot
loop; one success starts the job over from the first delay.

Used by `kubetrain.controller.reconciler` for failed reconciles (with jitter, so jobs that failed
together do not all retry together) and for creates refused as forbidden (without: the delay is
quoted in the job's status).
"""

from __future__ import annotations

import random
import threading

Key = tuple[str, str]


class Backoff:
    def __init__(self, first: float, cap: float, jitter: float = 0.0) -> None:
        self.first = first
        self.cap = cap
        self.jitter = jitter
        self._failures: dict[Key, int] = {}
        self._lock = threading.Lock()

    def failed(self, key: Key) -> float:
        """Counts a failure; the seconds to wait before the next try: first, doubling, capped,
        then spread by +/- jitter (a fraction)."""
        with self._lock:
            failures = self._failures[key] = self._failures.get(key, 0) + 1
        delay = min(self.first * 2.0 ** min(failures - 1, 64), self.cap)  # no overflow, however long
        return delay * random.uniform(1 - self.jitter, 1 + self.jitter) if self.jitter else delay

    def succeeded(self, key: Key) -> None:
        with self._lock:
            self._failures.pop(key, None)
