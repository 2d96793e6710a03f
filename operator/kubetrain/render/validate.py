"""Checks the CRD schema cannot make: those that need the operator's catalogue. Each refusal
becomes the job's Failed=InvalidSpec condition."""

from __future__ import annotations

from kubetrain.api.job import TrainingJob
from kubetrain.api.nodepools import NodePoolCatalogue
from kubetrain.render.errors import InvalidSpec
from kubetrain.render.placement import placement_errors


def validate_spec(job: TrainingJob, catalogue: NodePoolCatalogue) -> list[InvalidSpec]:
    return placement_errors(job.spec, catalogue)
