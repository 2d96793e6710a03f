"""`TrainingSchedule`: a TrainingJob template run on a schedule, as a CronJob runs a Job template.
Scheduled retraining needs nothing else: the template's spec.model and spec.evaluation gates decide,
per run, whether the new weights become a version and get promoted."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import ClassVar, Final, Literal

from pydantic import ConfigDict, Field

from kubetrain.api.base import CamelModel
from kubetrain.api.contract import API_VERSION
from kubetrain.api.identity import ApiInfo
from kubetrain.api.registry import RecordMetadata
from kubetrain.api.spec import PodTemplateMetadata, TrainingJobSpec

SCHEDULE_KIND: Final = "TrainingSchedule"
SCHEDULE_LABEL = "kubetrain.io/schedule"
# <schedule>-<YYYYmmddHHMMSS> is the job name, at most 63 characters.
MAX_SCHEDULE_NAME_LENGTH = 48


class ScheduleReason(StrEnum):
    """The reasons of the Events the operator posts on a TrainingSchedule."""

    INVALID_SCHEDULE = "InvalidSchedule"
    JOB_CREATED = "JobCreated"
    JOB_REFUSED = "JobRefused"


class JobTemplate(CamelModel):
    metadata: PodTemplateMetadata = Field(
        default_factory=PodTemplateMetadata, description="Labels and annotations of every created TrainingJob."
    )
    spec: TrainingJobSpec = Field(description="Spec of every created TrainingJob.")


class TrainingScheduleSpec(CamelModel):
    schedule: str = Field(
        min_length=1,
        description="When to create a job: a 5-field cron expression in UTC ('0 3 * * *'), a macro (@hourly, "
        "@daily, @weekly, @monthly) or a fixed interval '@every <n>s|m|h' (at least 5s).",
    )
    suspend: bool = Field(default=False, description="True creates no further jobs.")
    job_template: JobTemplate = Field(description="The TrainingJob to create at each scheduled time.")


class TrainingScheduleStatus(CamelModel):
    last_schedule_time: datetime | None = Field(default=None, description="Scheduled time of the last created job.")
    last_job: str | None = Field(default=None, description="Name of the last created TrainingJob.")
    next_schedule_time: datetime | None = Field(default=None, description="When the next job will be created.")
    message: str | None = Field(default=None, description="Why no job can be scheduled (an invalid schedule).")


class ScheduleMetadata(RecordMetadata):
    namespace: str = Field(default="default", description="Namespace of the schedule and its jobs.")
    uid: str = Field(default="", description="Owner of the created jobs.")


class TrainingSchedule(CamelModel):
    model_config = ConfigDict(extra="ignore")
    api_info: ClassVar[ApiInfo] = ApiInfo(
        kind=SCHEDULE_KIND, plural="trainingschedules", singular="trainingschedule", short_names=("tsch",)
    )

    api_version: Literal["kubetrain.io/v1alpha1"] = Field(default=API_VERSION, description="API version.")
    kind: Literal["TrainingSchedule"] = Field(default=SCHEDULE_KIND, description="TrainingSchedule.")
    metadata: ScheduleMetadata = Field(description="Standard object metadata.")
    spec: TrainingScheduleSpec = Field(description="When, and what to train.")
    status: TrainingScheduleStatus = Field(default_factory=TrainingScheduleStatus, description="What happened.")
