"""The operator configuration the renderer needs (the same for every namespace)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class RenderSettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    default_image: str = Field(min_length=1, description="Trainer image of jobs that leave spec.image unset.")
