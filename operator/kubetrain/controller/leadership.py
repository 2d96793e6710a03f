"""Leader election over a coordination.k8s.io Lease: of N operator replicas, one reconciles.

Run by controller.run beside kopf: every replica watches (its cache stays warm) and serves
admission, but only the Lease holder's wake-ups run (controller.requeue pauses the others'). The
rules are client-go's, so they hold across clocks that disagree: a standby judges the Lease
expired by its own clock, `leaseDurationSeconds` after it last saw the record change, never by the
timestamps written in it. The leader stops acting `renewDeadline` after its last successful renewal,
before any standby may take over, whatever its renewal request is doing: client-go cancels a
renewal at the deadline through its context, but the official client here retries a timed-out
GET on its own (urllib3's three retries), so one request can outlast the deadline several times
over; a second thread keeps the deadline instead. Losing the Lease ends the process (its pod restarts as a standby),
so no half-stopped state has to be reasoned about. A leader stopped gracefully releases the Lease,
and a standby takes over within one retry period instead of a whole lease duration.

kopf's own peering is not used: replicas of equal priority pause each other ("Possibly conflicting
operators"), and a crashed peer blocks the others for its whole lifetime (60 s); it also has no
notion of a webhook-serving standby.
"""

from __future__ import annotations

import datetime as dt
import enum
import logging
import random
import threading
import time
from collections.abc import Callable
from typing import Any

import urllib3
from kubernetes.client.exceptions import ApiException

from kubetrain.controller.config import LeaderElectionConfig
from kubetrain.controller.kube import Conflict, Kube

log = logging.getLogger("kubetrain.leadership")


class Step(str, enum.Enum):
    """What a replica does with the Lease as it last read it."""

    CREATE = "create"  # there is none yet
    ACQUIRE = "acquire"  # nobody holds it, or its holder stopped renewing
    RENEW = "renew"  # it is ours
    FOLLOW = "follow"  # another replica holds it and renews it


def next_step(spec: dict[str, Any] | None, identity: str, unchanged_for: float, default_duration: float) -> Step:
    """`unchanged_for`: seconds, by this replica's clock, since it first saw the Lease as it is now."""
    if spec is None:
        return Step.CREATE
    holder = spec.get("holderIdentity") or ""
    if holder == identity:
        return Step.RENEW
    duration = spec.get("leaseDurationSeconds") or default_duration
    if not holder or unchanged_for >= duration:
        return Step.ACQUIRE
    return Step.FOLLOW


def held_spec(
    step: Step, previous: dict[str, Any] | None, identity: str, duration: float, now: dt.datetime
) -> dict[str, Any]:
    """The Lease's spec once this replica created, acquired or renewed it."""
    previous = previous or {}
    stamp = micro_time(now)
    transitions = int(previous.get("leaseTransitions") or 0)
    if step is Step.RENEW:
        return {**previous, "renewTime": stamp}
    if step is Step.ACQUIRE:
        transitions += 1
    return {
        "holderIdentity": identity,
        "leaseDurationSeconds": max(1, round(duration)),
        "acquireTime": stamp,
        "renewTime": stamp,
        "leaseTransitions": transitions,
    }


def released_spec(previous: dict[str, Any], now: dt.datetime) -> dict[str, Any]:
    """Held by nobody: the next standby to look acquires it at once (client-go's release)."""
    stamp = micro_time(now)
    return {
        "leaseDurationSeconds": 1,
        "acquireTime": stamp,
        "renewTime": stamp,
        "leaseTransitions": int(previous.get("leaseTransitions") or 0),
    }


def micro_time(moment: dt.datetime) -> str:
    """metav1.MicroTime, as the API server reads it."""
    return moment.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElector:
    """Campaigns for the Lease in a daemon thread; calls `on_started` once on acquiring it and
    `on_lost` once if it is lost (not on a graceful stop, which releases it instead)."""

    def __init__(
        self,
        kube: Kube,
        config: LeaderElectionConfig,
        on_started: Callable[[], None],
        on_lost: Callable[[], None],
    ) -> None:
        self.kube = kube
        self.config = config
        self._on_started = on_started
        self._on_lost = on_lost
        self._stop = threading.Event()
        self._leading = threading.Event()
        self._lost = threading.Event()
        # Leading, the last renewal and losing change together: a renewal that returns after the
        # deadline passed must not lead again.
        self._lock = threading.Lock()
        # The Lease as last read, and when (monotonic) this replica first saw that version.
        self._observed: dict[str, Any] | None = None
        self._observed_since = 0.0
        self._last_renewal = 0.0
        self._thread = threading.Thread(target=self._run, name="kubetrain-leader-election", daemon=True)
        self._deadline = threading.Thread(target=self._keep_deadline, name="kubetrain-leader-deadline", daemon=True)

    @property
    def leading(self) -> bool:
        return self._leading.is_set()

    def start(self) -> None:
        log.info("leader election: campaigning for Lease %s/%s as %s", self.config.namespace,
                 self.config.lease_name, self.config.identity)
        self._thread.start()
        self._deadline.start()

    def stop(self) -> None:
        """Ends the campaign; a leader releases the Lease. Call once nothing of this replica acts.
        After a loss the campaign may still wait on a hung request: it has nothing left to release,
        so the process does not wait for it."""
        self._stop.set()
        if self._deadline.is_alive():
            self._deadline.join()
        if self._thread.is_alive() and not self._lost.is_set():
            self._thread.join()
        if self.leading:
            self._release()

    def _run(self) -> None:
        while not self._stop.is_set() and not self._lost.is_set():
            try:
                self._attempt()
            except (ApiException, urllib3.exceptions.HTTPError, Conflict) as exc:
                log.debug("leader election: Lease not written: %s", exc)
            except Exception:  # the thread must live on: a dead one would neither renew nor step down
                log.exception("leader election: unexpected error; trying again")
            if self._lost_to_another():
                holder = ((self._observed or {}).get("spec") or {}).get("holderIdentity")
                self._lose(f"the Lease is held by {holder or 'nobody'}")
                return
            # A little jitter, so standbys started together do not all write at the same moment.
            self._stop.wait(self.config.retry_period_seconds * random.uniform(1.0, 1.1))

    def _attempt(self) -> None:
        namespace, name = self.config.namespace, self.config.lease_name
        timeout = self.config.renew_deadline_seconds / 2  # a hung request must not outlast the deadline
        lease = self.kube.get_lease(namespace, name, timeout)
        self._observe(lease)
        spec = (lease.get("spec") or {}) if lease is not None else None
        step = next_step(spec, self.config.identity, time.monotonic() - self._observed_since,
                         self.config.lease_duration_seconds)
        if step is Step.FOLLOW or (step is Step.ACQUIRE and self.leading):
            return  # a leader that finds the Lease taken or released by another stops, below
        desired = held_spec(step, spec, self.config.identity, self.config.lease_duration_seconds,
                            dt.datetime.now(dt.timezone.utc))
        if lease is None:
            written = self.kube.create_lease(namespace, name, desired, timeout)
            if written is None:
                return  # another replica created it first; it is read again next time
        else:
            version = lease["metadata"]["resourceVersion"]
            written = self.kube.update_lease(namespace, name, version, desired, timeout)
        with self._lock:
            if self._lost.is_set():
                return  # written after the deadline: a standby may already act, so this replica never does
            self._observe(written)
            self._last_renewal = time.monotonic()
            if not self.leading:
                self._leading.set()
                log.info("leader election: %s leads (Lease %s/%s)", self.config.identity, namespace, name)
                self._on_started()

    def _keep_deadline(self) -> None:
        """Checks the renewal deadline a few times per retry period, apart from the campaign,
        whose request may hang."""
        interval = self.config.retry_period_seconds / 4
        while not self._stop.wait(interval):
            with self._lock:
                overdue = self.leading and time.monotonic() - self._last_renewal > self.config.renew_deadline_seconds
            if overdue:
                self._lose(f"no renewal succeeded for {self.config.renew_deadline_seconds:g}s")
            if self._lost.is_set():
                return

    def _observe(self, lease: dict[str, Any] | None) -> None:
        version = (lease or {}).get("metadata", {}).get("resourceVersion")
        if self._observed is None or version != self._observed.get("metadata", {}).get("resourceVersion"):
            if lease is not None and not self.leading:
                log.debug(
                    "leader election: Lease held by %s", (lease.get("spec") or {}).get("holderIdentity") or "nobody"
                )
            self._observed_since = time.monotonic()
        self._observed = lease

    def _lost_to_another(self) -> bool:
        holder = ((self._observed or {}).get("spec") or {}).get("holderIdentity")
        return self.leading and self._observed is not None and holder != self.config.identity

    def _lose(self, why: str) -> None:
        """Once, from whichever thread sees the loss first."""
        with self._lock:
            if self._lost.is_set() or not self.leading:
                return
            self._lost.set()
            self._leading.clear()
            log.error("leader election: %s lost the lead (%s); stopping", self.config.identity, why)
            self._on_lost()

    def _release(self) -> None:
        observed = self._observed or {}
        try:
            self.kube.update_lease(
                self.config.namespace, self.config.lease_name, observed["metadata"]["resourceVersion"],
                released_spec(observed.get("spec") or {}, dt.datetime.now(dt.timezone.utc)),
                self.config.renew_deadline_seconds / 2,
            )
        except (ApiException, urllib3.exceptions.HTTPError, Conflict, KeyError) as exc:
            log.warning("leader election: Lease not released (%s); a standby takes over when it expires", exc)
            return
        self._leading.clear()
        log.info("leader election: %s released the Lease", self.config.identity)
