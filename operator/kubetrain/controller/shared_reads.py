"""Fresh reads shared by the reconciles that need one at the same moment.

A job must not start under a policy, or a namespace label, set a moment before it, so the facts a
job starts by are read from the API (a quorum read), not from a watch. What makes such a read
fresh enough for a reconcile is only that the API server answered it after the reconcile began:
it then reflects every write committed before the job's watch event reached the operator, so
before the job was created. A read another reconcile sent after this one began is as good as this
reconcile's own. When many jobs arrive together (a sweep, a pipeline's fan-out, a GitOps sync),
their reconciles share one read per key instead of sending one each.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from typing import Any, TypeVar, cast

T = TypeVar("T")


class _Slot:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.sent: float | None = None
        self.value: Any = None


class SharedReads:
    """The last answer per key with the moment its request was sent (monotonic clock). A
    reconcile that began before that moment takes the answer; one that began after it reads
    again. A read in flight makes the others of its key wait for it, not send theirs beside it:
    they began before it was sent, or after, and are served or read again accordingly."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._slots: dict[Hashable, _Slot] = {}

    def read(self, key: Hashable, began: float, fetch: Callable[[], T]) -> T:
        """`fetch`'s answer, sent after `began` (the reconcile's time.monotonic() at its start)."""
        with self._lock:
            slot = self._slots.setdefault(key, _Slot())
        with slot.lock:
            if slot.sent is not None and slot.sent > began:
                return cast(T, slot.value)
            sent = time.monotonic()
            value = fetch()
            slot.sent, slot.value = sent, value
            return value
