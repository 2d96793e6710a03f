"""The types of the Kubernetes Events the operator posts on its objects; their reasons are declared
beside each object's status (api.status.Reason, api.registry.ModelReason, api.schedule.ScheduleReason)."""

from __future__ import annotations

from enum import StrEnum


class EventType(StrEnum):
    NORMAL = "Normal"
    WARNING = "Warning"
