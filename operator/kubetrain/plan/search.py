"""The next trial's parameters from the trials recorded so far (pure). Grid enumerates the space in
order; Random and TPE ask Optuna, whose in-memory study is rebuilt here from the recorded trials on
every call, with a sampler seeded by the sweep's seed and the trial's index: the same records give
the same suggestion, so the search state needs nothing but the sweep's status, and an operator
restart neither repeats nor loses a trial. Optuna is imported only here, when a trial is drawn."""

from __future__ import annotations

import itertools
import json
import math
import warnings
from typing import TYPE_CHECKING, Any

from kubetrain.api.sweep import (
    Algorithm,
    Goal,
    Parameter,
    ParameterType,
    TrainingSweepSpec,
    Trial,
    TrialState,
)

if TYPE_CHECKING:
    from optuna.distributions import BaseDistribution

# Seeds of successive trials are far apart, so trial i of seed s never repeats trial j of seed s+1.
SEED_STRIDE = 100_003


class SearchSpaceError(ValueError):
    """The search space cannot be searched as asked; the message names the parameter and the fix."""


def grid_size(spec: TrainingSweepSpec) -> int | None:
    """The number of grid points (Grid), None for the unbounded samplers."""
    if spec.algorithm != Algorithm.GRID:
        return None
    return math.prod(len(_grid_values(p)) for p in spec.parameters)


def suggest(spec: TrainingSweepSpec, trials: list[Trial], index: int) -> dict[str, Any]:
    """The parameters of trial `index`, by path. Raises SearchSpaceError for a space the
    algorithm cannot search (a continuous parameter on a grid)."""
    if spec.algorithm == Algorithm.GRID:
        axes = [_grid_values(p) for p in spec.parameters]
        point = next(itertools.islice(itertools.product(*axes), index, None))
        return {p.path: value for p, value in zip(spec.parameters, point, strict=True)}
    return _ask_optuna(spec, trials, index)


def _grid_values(parameter: Parameter) -> list[Any]:
    if parameter.type == ParameterType.CATEGORICAL:
        return list(parameter.values or [])
    if parameter.type == ParameterType.INT:
        low, high = int(parameter.min or 0), int(parameter.max or 0)
        return list(range(low, high + 1, parameter.step or 1))
    raise SearchSpaceError(
        f"spec.parameters[{parameter.path}]: a {parameter.type.value} parameter has no grid; use algorithm Random "
        "or TPE, or make it categorical with the values to try"
    )


def _distribution(parameter: Parameter) -> BaseDistribution:
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if parameter.type == ParameterType.CATEGORICAL:
        # Lists are not Optuna choices: each choice travels as its JSON text.
        return CategoricalDistribution([json.dumps(v) for v in parameter.values or []])
    low, high = float(parameter.min or 0), float(parameter.max or 0)
    if parameter.type == ParameterType.INT:
        return IntDistribution(int(low), int(high), step=parameter.step or 1)
    return FloatDistribution(low, high, log=parameter.type == ParameterType.LOG_UNIFORM)


def _to_optuna(parameter: Parameter, value: Any) -> Any:
    return json.dumps(value) if parameter.type == ParameterType.CATEGORICAL else value


def _from_optuna(parameter: Parameter, value: Any) -> Any:
    if parameter.type == ParameterType.CATEGORICAL:
        return json.loads(value)
    return int(value) if parameter.type == ParameterType.INT else float(value)


def startup_trials(spec: TrainingSweepSpec) -> int:
    return spec.startup_trials or min(10, max(2, spec.max_trials // 4))


def _ask_optuna(spec: TrainingSweepSpec, trials: list[Trial], index: int) -> dict[str, Any]:
    import optuna
    from optuna.trial import TrialState as OptunaState

    # Optuna logs every in-memory study it creates at INFO; one is created per trial drawn.
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    distributions = {p.path: _distribution(p) for p in spec.parameters}
    seed = spec.seed * SEED_STRIDE + index
    sampler: optuna.samplers.BaseSampler
    with warnings.catch_warnings():
        # constant_liar is marked experimental; it is what keeps parallel trials apart.
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if spec.algorithm == Algorithm.TPE:
            sampler = optuna.samplers.TPESampler(
                seed=seed, n_startup_trials=startup_trials(spec), constant_liar=True
            )
        else:
            sampler = optuna.samplers.RandomSampler(seed=seed)
    study = optuna.create_study(
        sampler=sampler, direction="maximize" if spec.objective.goal == Goal.MAXIMIZE else "minimize"
    )
    for trial in trials:
        recorded = trial.parameters
        params = {p.path: _to_optuna(p, recorded[p.path]) for p in spec.parameters if p.path in recorded}
        if len(params) != len(distributions):
            continue  # recorded under another search space (the spec was edited): not comparable
        if trial.state == TrialState.SUCCEEDED and trial.value is not None:
            state, value = OptunaState.COMPLETE, trial.value
        elif trial.state == TrialState.PRUNED:
            state, value = OptunaState.PRUNED, None
        elif trial.state in (TrialState.PENDING, TrialState.RUNNING):
            state, value = OptunaState.RUNNING, None
        else:
            state, value = OptunaState.FAIL, None
        try:
            study.add_trial(optuna.trial.create_trial(
                state=state, value=value, params=params, distributions=distributions,
                intermediate_values={int(epoch): v for epoch, v in trial.intermediate.items()},
            ))
        except ValueError:
            continue  # a value outside the (edited) space: not comparable either
    asked = study.ask(distributions)
    return {p.path: _from_optuna(p, asked.params[p.path]) for p in spec.parameters}
