"""The renderer the controller calls: validates, then picks the runtime's renderer."""

from __future__ import annotations

from collections.abc import Callable

from kubetrain.api.job import TrainingJob
from kubetrain.api.nodepools import NodePoolCatalogue
from kubetrain.api.spec import Runtime
from kubetrain.render.gang import gang_enabled, with_pod_group
from kubetrain.render.objects import DesiredObjects
from kubetrain.render.pytorch import render_pytorch
from kubetrain.render.ray import render_ray
from kubetrain.render.settings import RenderSettings
from kubetrain.render.validate import validate_spec

Renderer = Callable[[TrainingJob, NodePoolCatalogue, RenderSettings, list[str] | None], DesiredObjects]
RENDERERS: dict[Runtime, Renderer] = {Runtime.PYTORCH: render_pytorch, Runtime.RAY: render_ray}


def render_children(
    job: TrainingJob,
    catalogue: NodePoolCatalogue,
    settings: RenderSettings,
    allowed_regions: list[str] | None = None,
) -> DesiredObjects:
    """The runtime's children, without validation (the planner validates first itself); every
    runtime gets the same residency regions (render.placement) and the same gang (render.gang)."""
    children = RENDERERS[job.spec.runtime](job, catalogue, settings, allowed_regions)
    return with_pod_group(job, children) if gang_enabled(job, settings) else children


def render_job(job: TrainingJob, catalogue: NodePoolCatalogue, settings: RenderSettings) -> DesiredObjects:
    """Raises the first InvalidSpec."""
    errors = validate_spec(job, catalogue)
    if errors:
        raise errors[0]
    return render_children(job, catalogue, settings)
