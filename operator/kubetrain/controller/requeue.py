"""Wake-ups at a future time (deadlines, TTLs), one pending timer per job.

Kept per operator instance (handed to handlers through kopf's memo), never module-global.
"""

from __future__ import annotations

import threading
from collections.abc import Callable


class Requeuer:
    def __init__(self, callback: Callable[[str, str], None]) -> None:
        self._callback = callback
        self._timers: dict[tuple[str, str], threading.Timer] = {}
        self._lock = threading.Lock()

    def schedule(self, namespace: str, name: str, delay_seconds: float | None) -> None:
        """Replaces the job's pending wake-up; None just cancels it."""
        key = (namespace, name)
        with self._lock:
            old = self._timers.pop(key, None)
            if old is not None:
                old.cancel()
            if delay_seconds is None:
                return
            timer = threading.Timer(max(delay_seconds, 0.0), self._fire, args=key)
            timer.daemon = True
            self._timers[key] = timer
            timer.start()

    def _fire(self, namespace: str, name: str) -> None:
        with self._lock:
            self._timers.pop((namespace, name), None)
        self._callback(namespace, name)

    def cancel_all(self) -> None:
        with self._lock:
            for timer in self._timers.values():
                timer.cancel()
            self._timers.clear()


class JobLocks:
    """One lock per job, so the TrainingJob watch and the pod watch never reconcile the same job
    at once (each reconcile reads fresh state inside the lock)."""

    def __init__(self) -> None:
        self._locks: dict[tuple[str, str], threading.Lock] = {}
        self._guard = threading.Lock()

    def __call__(self, namespace: str, name: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault((namespace, name), threading.Lock())

    def forget(self, namespace: str, name: str) -> None:
        with self._guard:
            self._locks.pop((namespace, name), None)
