"""`BudgetPolicy` (cluster-scoped): how many GPU-hours the TrainingJobs of each selected namespace
may use per calendar period (UTC), and `status.cost`, the operator's estimate and count of one job."""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar, Final, Literal

from pydantic import ConfigDict, Field

from kubetrain.api.base import CamelModel
from kubetrain.api.contract import API_VERSION
from kubetrain.api.identity import ApiInfo
from kubetrain.api.residency import NamespaceScope, PolicyMetadata

BUDGET_KIND: Final = "BudgetPolicy"


class BudgetPeriod(StrEnum):
    DAY = "Day"
    WEEK = "Week"
    MONTH = "Month"


class BudgetAction(StrEnum):
    REJECT = "Reject"
    QUEUE = "Queue"


class BudgetPolicySpec(NamespaceScope):
    gpu_hours: float = Field(
        gt=0,
        description="GPU-hours each selected namespace may use per period: finished jobs count what they used, "
        "jobs admitted and not finished count their whole estimate (workers x gpus x activeDeadlineSeconds).",
    )
    period: BudgetPeriod = Field(
        default=BudgetPeriod.MONTH, description="Calendar period (UTC) the budget renews: Day, Week (from Monday) "
        "or Month."
    )
    on_exhaustion: BudgetAction = Field(
        default=BudgetAction.REJECT,
        description="What a job that does not fit gets: Reject refuses it at admission (or fails it before it "
        "starts); Queue admits it and holds it in phase Queued (reason BudgetExhausted), no pod created, until it "
        "fits: the period rolls over, the budget is raised, or other jobs finish under their estimate.",
    )


class BudgetPolicy(CamelModel):
    model_config = ConfigDict(extra="ignore")
    api_info: ClassVar[ApiInfo] = ApiInfo(
        kind=BUDGET_KIND, plural="budgetpolicies", singular="budgetpolicy", short_names=("bp",)
    )

    api_version: Literal["kubetrain.io/v1alpha1"] = Field(default=API_VERSION, description="API version.")
    kind: Literal["BudgetPolicy"] = Field(default=BUDGET_KIND, description="BudgetPolicy.")
    metadata: PolicyMetadata = Field(description="Standard object metadata.")
    spec: BudgetPolicySpec = Field(description="Which namespaces, and their GPU-hours per period.")


class Cost(CamelModel):
    """GPU-hours are workers x resources.gpus x hours; cost is GPU-hours x the pool's price."""

    estimated_gpu_hours: float | None = Field(
        default=None,
        ge=0,
        description="The most the job can use: workers x gpus x runPolicy.activeDeadlineSeconds (0 without GPUs); "
        "unset when GPUs are requested without a deadline (unbounded).",
    )
    price_per_gpu_hour: float | None = Field(
        default=None, ge=0, description="The node pool's price from the operator's catalogue; unset when not priced."
    )
    estimated_cost: float | None = Field(default=None, ge=0, description="estimatedGpuHours x pricePerGpuHour.")
    used_gpu_hours: float = Field(
        default=0, ge=0, description="GPU-hours consumed from status.startTime to status.completionTime (or now)."
    )
    used_cost: float | None = Field(default=None, ge=0, description="usedGpuHours x pricePerGpuHour.")
