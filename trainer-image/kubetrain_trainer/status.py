"""Live progress and final metrics into the TrainingJob's status, by server-side apply as field
manager `kubetrain-trainer` (docs/contracts.md).

Only the standard library is used so the image needs no Kubernetes client. Requests are made by
one background thread holding only the newest pending update: a slow or unreachable API server
delays nothing in the training loop and never fails it; it only costs updates, which are
superseded by later ones anyway.
"""

from __future__ import annotations

import datetime as dt
import json
import ssl
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from kubetrain_trainer import logs
from kubetrain_trainer.environment import JobEnvironment

FIELD_MANAGER = "kubetrain-trainer"
API_VERSION = "kubetrain.io/v1alpha1"
REQUEST_TIMEOUT_SECONDS = 5.0


def rfc3339(moment: dt.datetime | None = None) -> str:
    return (moment or dt.datetime.now(dt.timezone.utc)).astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class Throttle:
    """True at most once per interval (the first call always)."""

    def __init__(self, interval_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._interval = interval_seconds
        self._clock = clock
        self._last: float | None = None

    def due(self) -> bool:
        now = self._clock()
        if self._last is not None and now - self._last < self._interval:
            return False
        self._last = now
        return True


class StatusReporter:
    def __init__(
        self,
        base_url: str,
        namespace: str,
        name: str,
        token: Callable[[], str | None],
        ca_file: str | None = None,
        interval_seconds: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = (
            f"{base_url.rstrip('/')}/apis/{API_VERSION}/namespaces/{quote(namespace)}/trainingjobs/{quote(name)}"
            f"/status?fieldManager={FIELD_MANAGER}&force=true"
        )
        self._namespace = namespace
        self._name = name
        self._token = token
        self._ssl = ssl.create_default_context(cafile=ca_file) if base_url.startswith("https") else None
        self._throttle = Throttle(interval_seconds, clock)
        self._pending: dict[str, Any] | None = None
        self._last: dict[str, Any] = {}
        self._kept: dict[str, Any] = {}
        self._busy = False
        self._closed = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="status-reporter", daemon=True)
        self._thread.start()

    @classmethod
    def from_environment(cls, env: JobEnvironment, interval_seconds: float) -> StatusReporter | None:
        """None outside a cluster (no KUBERNETES_SERVICE_HOST): reporting is skipped entirely."""
        if not env.api_host:
            return None
        host = f"[{env.api_host}]" if ":" in env.api_host else env.api_host
        sa = Path(env.serviceaccount_dir)
        ca = sa / "ca.crt"

        def token() -> str | None:
            # Re-read on every request: projected service-account tokens are rotated in place.
            path = sa / "token"
            return path.read_text().strip() if path.exists() else None

        return cls(
            f"https://{host}:{env.api_port}",
            env.namespace,
            env.name,
            token,
            ca_file=str(ca) if ca.exists() else None,
            interval_seconds=interval_seconds,
        )

    def body(self, status: dict[str, Any]) -> dict[str, Any]:
        return {
            "apiVersion": API_VERSION,
            "kind": "TrainingJob",
            "metadata": {"name": self._name, "namespace": self._namespace},
            "status": status,
        }

    def progress(self, progress: dict[str, Any]) -> bool:
        """Queues a progress update unless one was queued less than the interval ago; says whether it was."""
        return self.offer({"progress": progress})

    def offer(self, status: dict[str, Any]) -> bool:
        """Queues `status` (every field the trainer keeps: server-side apply drops the others)
        unless an update was queued less than the interval ago; says whether it was."""
        if not self._throttle.due():
            return False
        self._enqueue(status)
        return True

    def send(self, status: dict[str, Any]) -> None:
        """Queues `status` regardless of the rate limit, without waiting: for the rare updates
        that must not wait for the next interval (a checkpoint written)."""
        self._enqueue(status)

    def checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """status.lastCheckpoint, sent at once with the last status queued, and kept in every later
        update: server-side apply would remove it from status as soon as an update left it out,
        and the built-in trainer's progress updates do not know of checkpoints."""
        with self._cond:
            self._kept["lastCheckpoint"] = checkpoint
        self._enqueue(self._last)

    def finish(self, status: dict[str, Any], timeout: float = 2 * REQUEST_TIMEOUT_SECONDS) -> None:
        """Sends the final update regardless of the rate limit and waits (bounded) for it to go out.

        Server-side apply removes fields the manager stops sending, so the final status must carry
        everything the trainer wants to keep (progress and metrics)."""
        self._enqueue(status)
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self.flush(timeout)

    def flush(self, timeout: float = 2 * REQUEST_TIMEOUT_SECONDS) -> None:
        """Waits (bounded) until what is queued has gone out: a trainer about to end (stopped on
        SIGTERM with its checkpoint in lastCheckpoint) must not take the update with it."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while (self._pending is not None or self._busy) and time.monotonic() < deadline:
                self._cond.wait(timeout=max(deadline - time.monotonic(), 0.01))

    def _enqueue(self, status: dict[str, Any]) -> None:
        with self._cond:
            self._last = status
            self._pending = {**status, **self._kept}
            self._cond.notify_all()

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._pending is None and not self._closed:
                    self._cond.wait()
                if self._pending is None:
                    return
                status, self._pending, self._busy = self._pending, None, True
            try:
                self._send(status)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _send(self, status: dict[str, Any]) -> None:
        request = urllib.request.Request(
            self.url,
            data=json.dumps(self.body(status)).encode(),  # JSON is YAML, which apply-patch+yaml takes
            method="PATCH",
            headers={"Content-Type": "application/apply-patch+yaml", "Accept": "application/json"},
        )
        token = self._token()
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT_SECONDS, context=self._ssl) as response:
                response.read()
        except urllib.error.HTTPError as error:
            detail = error.read()[:500].decode(errors="replace")
            logs.warning("status_update_rejected", http_status=error.code, detail=detail)
        except (OSError, ValueError) as error:
            logs.warning("status_update_failed", error=str(error))
