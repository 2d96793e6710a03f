"""`TrainingSweep`: a hyperparameter search. A TrainingJob template, a search space over its
spec.task fields, an objective the trainer reports, and the limits of the search (trials, trials
at once, GPU-hours). Each trial is an ordinary TrainingJob owned by the sweep, so residency,
budgets, provenance and gates apply to it unchanged. The search state is the trial table in
status: the operator rebuilds the search from it on every reconcile (plan/sweep.py)."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, ClassVar, Final, Literal

from pydantic import ConfigDict, Field, model_validator

from kubetrain.api.base import CamelModel
from kubetrain.api.contract import API_VERSION
from kubetrain.api.identity import ApiInfo
from kubetrain.api.schedule import JobTemplate, ScheduleMetadata

SWEEP_KIND: Final = "TrainingSweep"
SWEEP_LABEL = "kubetrain.io/sweep"
TRIAL_LABEL = "kubetrain.io/trial"
SWEEP_ANNOTATION = "kubetrain.io/sweep-parameters"
SEARCH_SPACE_ANNOTATION = "kubetrain.io/sweep-search-space"
# On the trials of a sweep with promoteBest: "held" keeps a trial from being judged by its model's
# gates until its sweep has ended with it as the best trial (controller/promotion.py).
PROMOTION_ANNOTATION = "kubetrain.io/sweep-promotion"
PROMOTION_HELD = "held"
# <sweep>-t<index> is the trial's job name, at most 63 characters (index below 10^5).
MAX_SWEEP_NAME_LENGTH = 56
MAX_TRIALS = 10_000


class SweepReason(StrEnum):
    """The reasons of the Events and status.reason of a TrainingSweep."""

    INVALID_SWEEP = "InvalidSweep"
    TRIAL_CREATED = "TrialCreated"
    TRIAL_REFUSED = "TrialRefused"
    TRIAL_FINISHED = "TrialFinished"
    TRIAL_PRUNED = "TrialPruned"
    TRIAL_LOST = "TrialLost"
    SEARCHING = "Searching"
    COST_CAP_REACHED = "CostCapReached"
    BUDGET_EXCEEDED = "BudgetExceeded"
    DEADLINE_REQUIRED = "DeadlineRequired"
    COMPLETED = "Completed"
    BEST_SUBMITTED = "BestSubmitted"


class ParameterType(StrEnum):
    CATEGORICAL = "categorical"
    INT = "int"
    FLOAT = "float"
    LOG_UNIFORM = "logUniform"


class Parameter(CamelModel):
    path: str = Field(
        min_length=1,
        pattern=r"^[A-Za-z][A-Za-z0-9]*(\.([A-Za-z][A-Za-z0-9]*|[0-9]+))*$",
        description="The spec.task field the parameter sets, dotted (learningRate, batchSize, model.hiddenSizes, "
        "finetune.lora.rank); a number indexes a list (model.hiddenSizes.0 is the first hidden width).",
    )
    type: ParameterType = Field(
        description="categorical (one of values), int (min..max by step), float (uniform in [min, max]) or "
        "logUniform (uniform in log space, for learning rates)."
    )
    values: list[Any] | None = Field(
        default=None,
        min_length=1,
        description="The choices of a categorical parameter: numbers, strings, booleans or lists ([64, 32]).",
        json_schema_extra={"items": {"x-kubernetes-preserve-unknown-fields": True}},
    )
    min: float | None = Field(default=None, description="Lowest value of an int, float or logUniform parameter.")
    max: float | None = Field(default=None, description="Highest value of an int, float or logUniform parameter.")
    step: int | None = Field(default=None, ge=1, description="Spacing of an int parameter's values (1).")

    @model_validator(mode="after")
    def _range(self) -> Parameter:
        name = f"spec.parameters[{self.path}]"
        if self.type == ParameterType.CATEGORICAL:
            if not self.values:
                raise ValueError(f"{name}: a categorical parameter needs values, e.g. values: [16, 64, 256]")
            return self
        if self.min is None or self.max is None or self.min > self.max:
            raise ValueError(f"{name}: a {self.type.value} parameter needs min <= max, e.g. min: 0.001, max: 0.1")
        if self.type == ParameterType.LOG_UNIFORM and self.min <= 0:
            raise ValueError(f"{name}: a logUniform parameter needs min > 0 (got {self.min:g})")
        return self


class Goal(StrEnum):
    MAXIMIZE = "Maximize"
    MINIMIZE = "Minimize"


class Objective(CamelModel):
    metric: str = Field(
        min_length=1,
        description="A metric the trainer reports: live in status.progress.metrics (what pruning compares) and "
        "final in status.metrics (what ranks trials), e.g. accuracy, f1, loss.",
    )
    goal: Goal = Field(default=Goal.MAXIMIZE, description="Maximize or Minimize the metric.")


class Algorithm(StrEnum):
    RANDOM = "Random"
    GRID = "Grid"
    TPE = "TPE"


class PruningPolicy(StrEnum):
    NONE = "None"
    MEDIAN = "Median"


class Pruning(CamelModel):
    policy: PruningPolicy = Field(
        default=PruningPolicy.NONE,
        description="Median: a running trial whose live metric at an epoch is worse than the median of the other "
        "trials' at the same epoch is stopped (its TrainingJob deleted). None: every trial runs to its end.",
    )
    warmup_epochs: int = Field(default=1, ge=0, description="Epochs a trial runs before it may be pruned.")
    min_trials: int = Field(
        default=2, ge=1, description="Trials that must have reached an epoch before a trial is compared there."
    )


class TrainingSweepSpec(CamelModel):
    job_template: JobTemplate = Field(description="The TrainingJob every trial runs, with the parameters set.")
    parameters: list[Parameter] = Field(min_length=1, description="The search space: spec.task fields and ranges.")
    objective: Objective = Field(description="The metric to optimise.")
    algorithm: Algorithm = Field(
        default=Algorithm.RANDOM,
        description="Random (independent draws), Grid (every combination in order; int and categorical only) or "
        "TPE (Optuna's model-based Tree-structured Parzen Estimator, after startupTrials random ones).",
    )
    startup_trials: int | None = Field(
        default=None, ge=1, description="TPE: random trials before the model is used (default: a quarter of "
        "maxTrials, between 2 and 10)."
    )
    seed: int = Field(default=0, description="Seed of the search: the same seed and results draw the same trials.")
    max_trials: int = Field(default=10, ge=1, le=MAX_TRIALS, description="Trials to run in all.")
    parallel_trials: int = Field(default=1, ge=1, description="Trials running at once.")
    pruning: Pruning = Field(default_factory=Pruning, description="Early stopping of trials that fall behind.")
    promote_best: bool = Field(
        default=False,
        description="With spec.model in the template: trials are not judged by the model's gates as they succeed; "
        "once the sweep ends, its best trial is, and becomes a ModelVersion (promoted if it passes) like any job, "
        "with the sweep and its search space in its provenance. False: every trial is judged as any job.",
    )
    max_gpu_hours: float | None = Field(
        default=None,
        gt=0,
        description="Cost cap: no trial is launched unless the GPU-hours spent plus those held by running trials "
        "plus the new trial's whole estimate stay within it. Unset: only maxTrials and budgets limit the sweep.",
    )


class TrialState(StrEnum):
    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    PRUNED = "Pruned"


ACTIVE_TRIALS = (TrialState.PENDING, TrialState.RUNNING)


class Trial(CamelModel):
    index: int = Field(ge=0, description="0-based; the trial's job is <sweep>-t<index>.")
    job: str = Field(description="Name of the trial's TrainingJob.")
    parameters: dict[str, Any] = Field(
        description="The sampled value of each parameter, by path.",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )
    state: TrialState = Field(default=TrialState.PENDING, description="Pending, Running, Succeeded, Failed, Pruned.")
    value: float | None = Field(default=None, description="The objective's final value (status.metrics).")
    intermediate: dict[str, float] = Field(
        default_factory=dict, description="The objective's live value by epoch (status.progress.metrics)."
    )
    gpu_hours: float = Field(default=0, ge=0, description="GPU-hours the trial's job used (frozen once it ended).")
    message: str | None = Field(default=None, description="Why it failed or was pruned.")


class BestTrial(CamelModel):
    index: int = Field(ge=0, description="The best trial's index.")
    job: str = Field(description="Its TrainingJob.")
    parameters: dict[str, Any] = Field(
        description="Its parameters.", json_schema_extra={"x-kubernetes-preserve-unknown-fields": True}
    )
    value: float = Field(description="Its objective value.")


class SweepCost(CamelModel):
    trial_gpu_hours: float | None = Field(
        default=None, ge=0, description="The most one trial can use (workers x gpus x activeDeadlineSeconds)."
    )
    estimated_gpu_hours: float | None = Field(default=None, ge=0, description="maxTrials x trialGpuHours.")
    estimated_cost: float | None = Field(default=None, ge=0, description="estimatedGpuHours x the pool's price.")
    spent_gpu_hours: float = Field(default=0, ge=0, description="GPU-hours the trials used so far.")
    remaining_gpu_hours: float | None = Field(
        default=None, ge=0, description="maxGpuHours less the GPU-hours spent and held by running trials."
    )
    budget: str | None = Field(default=None, description="The namespace budget the trials draw on, as last judged.")


class PhaseCounts(CamelModel):
    pending: int = Field(default=0, ge=0, description="Recorded, not yet running.")
    running: int = Field(default=0, ge=0, description="Running.")
    succeeded: int = Field(default=0, ge=0, description="Finished with a value.")
    failed: int = Field(default=0, ge=0, description="Failed, lost or refused.")
    pruned: int = Field(default=0, ge=0, description="Stopped early by pruning.")


class SweepPhase(StrEnum):
    RUNNING = "Running"
    WAITING = "Waiting"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


class TrainingSweepStatus(CamelModel):
    phase: SweepPhase | None = Field(
        default=None, description="Running (trials to launch or running), Waiting (a cap or budget holds the "
        "next trial), Succeeded (no more trials; best is set) or Failed (invalid, or no trial succeeded)."
    )
    reason: str | None = Field(default=None, description="Why the sweep is in its phase (CamelCase).")
    message: str | None = Field(default=None, description="The same, for people.")
    trials: list[Trial] = Field(
        default_factory=list, description="Every trial, recorded before its job is created: the search state."
    )
    counts: PhaseCounts = Field(default_factory=PhaseCounts, description="Trials by state.")
    completed: str | None = Field(default=None, description="Ended trials / maxTrials, for kubectl get.")
    best: BestTrial | None = Field(default=None, description="The best succeeded trial.")
    cost: SweepCost = Field(default_factory=SweepCost, description="Estimated, spent and remaining GPU-hours.")
    observed_generation: int | None = Field(default=None, ge=0, description="The spec generation planned from.")


class TrainingSweep(CamelModel):
    model_config = ConfigDict(extra="ignore")
    api_info: ClassVar[ApiInfo] = ApiInfo(
        kind=SWEEP_KIND, plural="trainingsweeps", singular="trainingsweep", short_names=("tsw",)
    )

    api_version: Literal["kubetrain.io/v1alpha1"] = Field(default=API_VERSION, description="API version.")
    kind: Literal["TrainingSweep"] = Field(default=SWEEP_KIND, description="TrainingSweep.")
    metadata: ScheduleMetadata = Field(description="Standard object metadata.")
    spec: TrainingSweepSpec = Field(description="The template, the search space, the objective and the limits.")
    status: TrainingSweepStatus = Field(default_factory=TrainingSweepStatus, description="The trials and the best.")
