"""The renderer the controller calls: validates, then picks the runtime's renderer."""

from __future__ import annotations

from kubetrain.api.job import TrainingJob
from kubetrain.api.nodepools import NodePoolCatalogue
from kubetrain.render.objects import DesiredObjects
from kubetrain.render.pytorch import render_pytorch
from kubetrain.render.settings import RenderSettings
from kubetrain.render.validate import validate_spec


def render_job(job: TrainingJob, catalogue: NodePoolCatalogue, settings: RenderSettings) -> DesiredObjects:
    """Raises the first InvalidSpec (a ray job among them, until ray has its renderer)."""
    errors = validate_spec(job, catalogue)
    if errors:
        raise errors[0]
    return render_pytorch(job, catalogue, settings)
