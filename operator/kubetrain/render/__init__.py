"""Spec -> desired Kubernetes objects (pure)."""

from kubetrain.render.errors import InvalidSpec
from kubetrain.render.job import render_job
from kubetrain.render.objects import DesiredObjects
from kubetrain.render.pytorch import render_pytorch
from kubetrain.render.settings import RenderSettings
from kubetrain.render.validate import validate_spec

__all__ = ["DesiredObjects", "InvalidSpec", "RenderSettings", "render_job", "render_pytorch", "validate_spec"]
