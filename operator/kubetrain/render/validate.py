"""Checks the CRD schema cannot make: those that need the operator's catalogue or are not
implemented yet. Each refusal becomes the job's Failed=InvalidSpec condition."""

from __future__ import annotations

from kubetrain.api.job import TrainingJob
from kubetrain.api.nodepools import NodePoolCatalogue
from kubetrain.api.spec import Runtime
from kubetrain.render.errors import InvalidSpec
from kubetrain.render.placement import placement_errors

SUPPORTED_RUNTIMES = (Runtime.PYTORCH,)


def validate_spec(job: TrainingJob, catalogue: NodePoolCatalogue) -> list[InvalidSpec]:
    errors = []
    if job.spec.runtime not in SUPPORTED_RUNTIMES:
        errors.append(
            InvalidSpec(
                "spec.runtime",
                job.spec.runtime.value,
                ", ".join(r.value for r in SUPPORTED_RUNTIMES) + " (this operator version does not run ray yet)",
                "set spec.runtime to pytorch",
            )
        )
    return errors + placement_errors(job.spec, catalogue)
