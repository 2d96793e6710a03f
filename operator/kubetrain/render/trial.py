"""A TrainingSweep's trial as a TrainingJob: the template's spec with the trial's parameters set
at their spec.task paths, its own output, and the labels and annotations that tie it to the sweep
(plan/sweep.py records the trial; this builds its job)."""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError

from kubetrain.api.spec import TrainingJobSpec
from kubetrain.api.sweep import (
    PROMOTION_ANNOTATION,
    PROMOTION_HELD,
    SEARCH_SPACE_ANNOTATION,
    SWEEP_ANNOTATION,
    SWEEP_LABEL,
    TRIAL_LABEL,
    TrainingSweep,
    TrainingSweepSpec,
    Trial,
)
from kubetrain.render.templated import templated_job


class TrialSpecError(ValueError):
    """The parameters do not make a valid TrainingJob spec; the message says which and why."""


def trial_name(sweep: str, index: int) -> str:
    return f"{sweep}-t{index}"


def trial_spec(spec: TrainingSweepSpec, parameters: dict[str, Any], job: str) -> dict[str, Any]:
    """The template's spec with each parameter set at its path in spec.task, validated as a
    TrainingJob spec (the admission would refuse it otherwise). Each trial writes under its own
    <output.uri>/<job>: the trainer resumes from the checkpoints it finds at its output, so trials
    sharing one would continue each other's runs."""
    body = spec.job_template.spec.to_k8s()
    if "output" in body:
        body["output"]["uri"] = f"{body['output']['uri'].rstrip('/')}/{job}"
    for path, value in parameters.items():
        _set_path(body["task"], path, value)
    try:
        TrainingJobSpec.model_validate(body)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"])
        raise TrialSpecError(f"the parameters {json.dumps(parameters)} make spec.{where} invalid: {error['msg']}") \
            from exc
    return body


def _set_path(task: dict[str, Any], path: str, value: Any) -> None:
    parts = path.split(".")
    node: Any = task
    for part, following in zip(parts, [*parts[1:], None], strict=True):
        fresh: Any = [] if following is not None and following.isdigit() else {}
        if part.isdigit():
            if not isinstance(node, list) or int(part) > len(node):
                raise TrialSpecError(f"spec.task.{path}: index {part} is beyond the list's end")
            if int(part) == len(node):
                node.append(fresh)
            if following is None:
                node[int(part)] = value
            node = node[int(part)]
        else:
            if not isinstance(node, dict):
                raise TrialSpecError(f"spec.task.{path}: {part} is a field of an object, not of a list")
            if following is None:
                node[part] = value
            node = node.setdefault(part, fresh)


def trial_job(sweep: TrainingSweep, trial: Trial) -> dict[str, Any]:
    """The trial's TrainingJob: the template with the parameters set, labelled with the sweep and
    the trial's index, and the parameters in an annotation (the job's provenance records the
    whole configuration; the annotation says which part the sweep chose)."""
    spec = sweep.spec
    space = spec.model_dump(mode="json", by_alias=True, include={"algorithm", "objective", "parameters", "seed"},
                            exclude_none=True)
    annotations = {
        SWEEP_ANNOTATION: json.dumps(trial.parameters, sort_keys=True),
        SEARCH_SPACE_ANNOTATION: json.dumps(space, sort_keys=True),
    }
    if spec.promote_best:
        annotations[PROMOTION_ANNOTATION] = PROMOTION_HELD
    return templated_job(
        sweep.kind, sweep.metadata, spec.job_template, trial.job,
        {SWEEP_LABEL: sweep.metadata.name, TRIAL_LABEL: str(trial.index)}, annotations,
        trial_spec(spec, trial.parameters, trial.job),
    )
