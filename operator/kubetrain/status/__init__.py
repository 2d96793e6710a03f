"""Observed children -> status and actions (pure)."""

from kubetrain.status.conditions import derive_phase
from kubetrain.status.draft import Event, EventType, Plan
from kubetrain.status.observed import Observed, ObservedPod
from kubetrain.status.patch import status_patch
from kubetrain.status.plan import plan

__all__ = ["Event", "EventType", "Observed", "ObservedPod", "Plan", "derive_phase", "plan", "status_patch"]
