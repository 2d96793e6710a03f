"""Wake-ups of jobs: soon after a watch event (events of one job within the delay coalesce into
one reconcile), and at a future time (deadlines, TTLs, retries after an API error); at most one
pending per job, the earliest.

A paused Requeuer (an operator replica standing by for the leader) keeps every wake-up it is asked
for and runs none: on resume, all that fell due meanwhile run at once, so the new leader re-plans
every job its watches delivered (the planner is idempotent) and its timers pick up where they were.

All jobs share one scheduling thread and a small pool that runs the reconciles: a timer thread per
job cost an OS thread for every job with a deadline, and a policy change (which wakes every job)
started as many threads as there were jobs, all reconciling at once.
Kept per operator instance, never module-global.
"""

from __future__ import annotations

import abc
import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

Key = tuple[str, str]

# Reconciles run here, not on kopf's handler threads: as many as kopf's handler pool had,
# and waking every job after a policy change queues them instead of flooding the API server.
WAKE_UP_WORKERS = 16


class Requeuer:
    def __init__(
        self, callback: Callable[[str, str], None], workers: int = WAKE_UP_WORKERS, paused: bool = False
    ) -> None:
        self._callback = callback
        self._paused = paused
        self._due: dict[Key, float] = {}
        # (due, tie-breaker, job); entries whose due no longer matches self._due are stale.
        self._heap: list[tuple[float, int, Key]] = []
        self._order = itertools.count()
        self._changed = threading.Condition()
        self._stopped = False
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="kubetrain-wake-up")
        self._thread = threading.Thread(target=self._run, name="kubetrain-requeue", daemon=True)
        self._thread.start()

    def schedule(self, namespace: str, name: str, delay_seconds: float | None) -> None:
        """Wakes the job within `delay_seconds`; an earlier pending wake-up stays, since a spare
        reconcile is harmless (it re-plans and schedules again) and a lost one is not. None: no
        wake-up is needed by this caller (one already pending stays)."""
        if delay_seconds is None:
            return
        key = (namespace, name)
        due = time.monotonic() + max(delay_seconds, 0.0)
        with self._changed:
            pending = self._due.get(key)
            if pending is not None and pending <= due:
                return
            self._due[key] = due
            heapq.heappush(self._heap, (due, next(self._order), key))
            if len(self._heap) > 2 * len(self._due) + 64:
                self._heap = [(when, next(self._order), job) for job, when in self._due.items()]
                heapq.heapify(self._heap)
            self._changed.notify()

    def cancel(self, namespace: str, name: str) -> None:
        with self._changed:
            self._due.pop((namespace, name), None)

    def pending(self) -> int:
        with self._changed:
            return len(self._due)

    def pause(self) -> None:
        """Wake-ups are kept but none runs until resume()."""
        with self._changed:
            self._paused = True

    def resume(self) -> None:
        with self._changed:
            self._paused = False
            self._changed.notify()

    def _run(self) -> None:
        with self._changed:
            while not self._stopped:
                if self._paused:
                    self._changed.wait()
                    continue
                while self._heap and self._due.get(self._heap[0][2]) != self._heap[0][0]:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._changed.wait()
                    continue
                due, _, key = self._heap[0]
                wait = due - time.monotonic()
                if wait > 0:
                    self._changed.wait(wait)
                    continue
                heapq.heappop(self._heap)
                del self._due[key]
                self._pool.submit(self._wake, key)

    def _wake(self, key: Key) -> None:
        try:
            self._callback(*key)
        except Exception:  # a pool thread has nobody else to tell
            logging.getLogger("kubetrain.requeue").exception("wake-up of %s/%s failed", *key)

    def cancel_all(self) -> None:
        """Stops for good; returns once the reconciles already running have ended, so that a
        leader hands over its lease only when nothing of it still acts."""
        with self._changed:
            self._stopped = True
            self._due.clear()
            self._heap.clear()
            self._changed.notify()
        self._pool.shutdown(wait=True, cancel_futures=True)


class ObjectLocks:
    """One lock per object (namespace, name) of the reconciler's kind (a TrainingJob, a Model or a
    TrainingSchedule), so two watches (e.g. the TrainingJob watch and the pod watch) never reconcile
    the same object at once (each reconcile reads fresh state inside the lock)."""

    def __init__(self) -> None:
        self._locks: dict[tuple[str, str], threading.Lock] = {}
        self._guard = threading.Lock()

    def __call__(self, namespace: str, name: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault((namespace, name), threading.Lock())

    def forget(self, namespace: str, name: str) -> None:
        with self._guard:
            self._locks.pop((namespace, name), None)


# Watch events of one object within this delay are answered by one reconcile: a job's pods are
# scheduled and start within moments of each other, and one status write can report them all; a
# sweep's parallel trials report progress in bursts.
EVENT_COALESCE_SECONDS = 0.2


class QueuedReconciler(abc.ABC):
    """A reconciler of one kind (TrainingJob, Model, TrainingSchedule): its reconciles run one per
    object at a time (locks) and through its own Requeuer, which a standby replica keeps paused."""

    wake_delay = 0.0
    """Seconds from a watch event to its reconcile."""

    def __init__(self, paused: bool = False) -> None:
        self.locks = ObjectLocks()
        self.requeuer = Requeuer(self.reconcile, paused=paused)

    @abc.abstractmethod
    def reconcile(self, namespace: str, name: str) -> None: ...

    def wake(self, namespace: str, name: str) -> None:
        self.requeuer.schedule(namespace, name, self.wake_delay)

    def resume(self) -> None:
        self.requeuer.resume()

    def pause(self) -> None:
        self.requeuer.pause()

    def shutdown(self) -> None:
        self.requeuer.cancel_all()
