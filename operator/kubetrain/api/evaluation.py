"""`spec.model` and `spec.evaluation`: which model line a job trains, and the gates its metrics
must pass before its weights become a new promoted version of that line."""

from __future__ import annotations

from enum import StrEnum

from pydantic import ConfigDict, Field, model_validator

from kubetrain.api.base import CamelModel

MODEL_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
# <model>-v<version> must stay a valid object name and label value (63 characters).
MAX_MODEL_NAME_LENGTH = 48
MAX_GATES = 16

GATE_SHAPE_MESSAGE = (
    "spec.evaluation.gates[]: set op and value together (a threshold), maxRegression (compared with the "
    "promoted version), or both"
)


class GateOp(StrEnum):
    GE = ">="
    GT = ">"
    LE = "<="
    LT = "<"


class ModelRef(CamelModel):
    name: str = Field(
        pattern=MODEL_NAME_PATTERN,
        max_length=MAX_MODEL_NAME_LENGTH,
        description="Model line this job trains (e.g. fraud): a job that passes its gates records a ModelVersion "
        "<name>-v<N> and the Model <name> may promote it.",
    )
    intended_use: str | None = Field(
        default=None, max_length=2000,
        description="What the model is for (users, decisions, inputs); written into the model card's Intended use.",
    )
    out_of_scope_use: str | None = Field(
        default=None, max_length=2000,
        description="Uses the model was not built or evaluated for; written into the model card's Out-of-scope use.",
    )
    limitations: str | None = Field(
        default=None, max_length=2000,
        description="Known weaknesses (populations, inputs, drift) beyond what the metrics show; written into the "
        "model card's Limitations.",
    )


class Gate(CamelModel):
    """A threshold (op + value), a bound on the regression against the promoted version, or both.
    Higher is better for a metric unless the op says otherwise (<=, <) or, without op, its name
    contains `loss`."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "has(self.op) == has(self.value) && (has(self.value) || has(self.maxRegression))",
                    "message": GATE_SHAPE_MESSAGE,
                }
            ]
        }
    )

    metric: str = Field(
        min_length=1,
        pattern=r"^[A-Za-z0-9_.-]+$",
        description="Name of a metric the trainer reports (accuracy, f1, loss, precision, recall, ...).",
    )
    op: GateOp | None = Field(default=None, description="Comparison with value: >=, >, <= or <.")
    value: float | None = Field(default=None, description="Threshold the metric is compared with.")
    max_regression: float | None = Field(
        default=None,
        ge=0,
        description="The metric may be at most this much worse (absolute) than the currently promoted version's; "
        "passes when no version is promoted yet.",
    )

    @model_validator(mode="after")
    def _shape(self) -> Gate:
        if (self.op is None) != (self.value is None) or (self.value is None and self.max_regression is None):
            raise ValueError(GATE_SHAPE_MESSAGE)
        return self

    @property
    def higher_is_better(self) -> bool:
        if self.op is not None:
            return self.op in (GateOp.GE, GateOp.GT)
        return "loss" not in self.metric.lower()


class EvaluationSpec(CamelModel):
    gates: list[Gate] = Field(
        default_factory=list,
        max_length=MAX_GATES,
        description="Every gate must pass for the model to be recorded as a new version and promoted; "
        "none: every successful run is.",
    )
