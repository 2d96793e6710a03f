"""A TrainingSchedule at a given time -> the job to create, if one is due, and its new status
(pure). Like a CronJob: a missed run is not caught up one by one; only the latest due time is
run. The job's name derives from its scheduled time, so creating it twice (a restart between the
create and the status write) is refused by the API server instead of running twice."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from croniter import croniter
from pydantic import BaseModel, ConfigDict, Field

from kubetrain.api.events import EventType
from kubetrain.api.schedule import SCHEDULE_LABEL, ScheduleReason, TrainingSchedule, TrainingScheduleStatus
from kubetrain.plan.draft import Event
from kubetrain.render.templated import templated_job

EVERY = re.compile(r"^@every\s+(\d+)\s*([smh])$")
MIN_INTERVAL = timedelta(seconds=5)
_UNITS = {"s": 1, "m": 60, "h": 3600}


class ScheduleError(ValueError):
    """The schedule cannot be parsed; the message says what is accepted."""


class Cadence(BaseModel):
    """A fixed interval from an anchor (@every), or a cron expression in UTC."""

    model_config = ConfigDict(frozen=True)

    interval: timedelta | None = None
    cron: str | None = None

    @classmethod
    def parse(cls, text: str) -> Cadence:
        text = text.strip()
        every = EVERY.match(text)
        if every:
            interval = timedelta(seconds=int(every.group(1)) * _UNITS[every.group(2)])
            if interval < MIN_INTERVAL:
                raise ScheduleError(f"spec.schedule {text!r}: the interval must be at least 5s")
            return cls(interval=interval)
        if croniter.is_valid(text) and len(text.split()) in (1, 5):
            return cls(cron=text)
        raise ScheduleError(
            f"spec.schedule {text!r} is not a schedule: use 5 cron fields in UTC ('0 3 * * *'), @hourly, @daily, "
            "@weekly, @monthly, or '@every <n>s|m|h'"
        )

    def next_after(self, moment: datetime, anchor: datetime) -> datetime:
        if self.interval is not None:
            steps = int((moment - anchor) / self.interval) + 1
            return anchor + steps * self.interval
        assert self.cron is not None  # parse() sets exactly one of interval and cron
        return croniter(self.cron, moment).get_next(datetime)

    def latest_at_or_before(self, moment: datetime, anchor: datetime) -> datetime:
        if self.interval is not None:
            return anchor + int((moment - anchor) / self.interval) * self.interval
        assert self.cron is not None  # parse() sets exactly one of interval and cron
        return croniter(self.cron, moment + timedelta(seconds=1)).get_prev(datetime)


class SchedulePlan(BaseModel):
    model_config = ConfigDict(frozen=True)

    create: dict[str, Any] | None = Field(default=None, description="The TrainingJob to create now.")
    status: TrainingScheduleStatus
    requeue_after: float | None = None
    events: list[Event] = Field(default_factory=list)


def job_name(schedule: str, at: datetime) -> str:
    return f"{schedule}-{at:%Y%m%d%H%M%S}"


def plan_schedule(schedule: TrainingSchedule, now: datetime) -> SchedulePlan:
    now = now.replace(microsecond=0)
    old, meta = schedule.status, schedule.metadata
    anchor = meta.creation_timestamp or now
    try:
        cadence = Cadence.parse(schedule.spec.schedule)
    except ScheduleError as exc:
        status = old.model_copy(update={"next_schedule_time": None, "message": str(exc)})
        events = (
            []
            if old.message == str(exc)
            else [Event(type=EventType.WARNING, reason=ScheduleReason.INVALID_SCHEDULE, message=str(exc))]
        )
        return SchedulePlan(status=status, events=events)
    if schedule.spec.suspend:
        return SchedulePlan(status=old.model_copy(update={"next_schedule_time": None, "message": None}))
    due = cadence.next_after(old.last_schedule_time or anchor, anchor)
    if due > now:
        status = old.model_copy(update={"next_schedule_time": due, "message": None})
        return SchedulePlan(status=status, requeue_after=(due - now).total_seconds())
    fire = cadence.latest_at_or_before(now, anchor)
    name = job_name(meta.name, fire)
    following = cadence.next_after(fire, anchor)
    status = TrainingScheduleStatus(last_schedule_time=fire, last_job=name, next_schedule_time=following)
    return SchedulePlan(
        create=_job(schedule, name),
        status=status,
        requeue_after=(following - now).total_seconds(),
        events=[Event(type=EventType.NORMAL, reason=ScheduleReason.JOB_CREATED,
                      message=f"created TrainingJob {name} for {fire:%Y-%m-%dT%H:%M:%SZ}")],
    )


def _job(schedule: TrainingSchedule, name: str) -> dict[str, Any]:
    return templated_job(schedule.kind, schedule.metadata, schedule.spec.job_template, name,
                         {SCHEDULE_LABEL: schedule.metadata.name})
