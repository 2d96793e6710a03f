"""The operator configuration the renderer needs (the same for every namespace)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class RenderSettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    default_image: str = Field(min_length=1, description="Trainer image of jobs that leave spec.image unset.")
    gang_scheduling: bool = Field(
        default=False,
        description="Render a PodGroup per attempt for jobs whose runPolicy.gangScheduling is Auto: the cluster "
        "serves scheduling.k8s.io/v1beta1 PodGroups (found once at start) and --gang-scheduling is auto.",
    )
