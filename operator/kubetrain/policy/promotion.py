"""Promotion gates, decided purely: a run's metrics (and the promoted version's, for regression
bounds) -> pass or fail, with one line per gate that names the metric, its value and the bound."""

from __future__ import annotations

import operator
from collections.abc import Callable

from pydantic import BaseModel, ConfigDict, Field

from kubetrain.api.evaluation import Gate, GateOp

_COMPARE: dict[GateOp, Callable[[float, float], bool]] = {
    GateOp.GE: operator.ge,
    GateOp.GT: operator.gt,
    GateOp.LE: operator.le,
    GateOp.LT: operator.lt,
}


class Promoted(BaseModel):
    """The version a regression bound compares with."""

    model_config = ConfigDict(frozen=True)

    name: str
    metrics: dict[str, float] = Field(default_factory=dict)


class GateVerdict(BaseModel):
    model_config = ConfigDict(frozen=True)

    passed: list[str] = Field(default_factory=list, description="How each check that held was met.")
    failed: list[str] = Field(default_factory=list, description="Each check that did not hold, with the numbers.")

    @property
    def ok(self) -> bool:
        return not self.failed


def judge_gates(gates: list[Gate], metrics: dict[str, float], promoted: Promoted | None) -> GateVerdict:
    """A metric the run did not report fails its gate: an unmeasured model is not a better one."""
    passed: list[str] = []
    failed: list[str] = []
    for gate in gates:
        value = metrics.get(gate.metric)
        if value is None:
            reported = ", ".join(sorted(metrics)) or "none"
            failed.append(f"{gate.metric}: not reported by the run (reported: {reported})")
            continue
        for held, line in _checks(gate, value, promoted):
            (passed if held else failed).append(line)
    return GateVerdict(passed=passed, failed=failed)


def _checks(gate: Gate, value: float, promoted: Promoted | None) -> list[tuple[bool, str]]:
    checks: list[tuple[bool, str]] = []
    if gate.op is not None and gate.value is not None:
        held = _COMPARE[gate.op](value, gate.value)
        checks.append((held, f"{gate.metric} {_num(value)} {gate.op} {_num(gate.value)}"))
    if gate.max_regression is not None:
        checks.append(_regression(gate, gate.max_regression, value, promoted))
    return checks


def _regression(gate: Gate, allowed: float, value: float, promoted: Promoted | None) -> tuple[bool, str]:
    reference = promoted.metrics.get(gate.metric) if promoted is not None else None
    if promoted is None or reference is None:
        what = "no version is promoted" if promoted is None else f"{promoted.name} has no {gate.metric}"
        return True, f"{gate.metric} {_num(value)}: maxRegression not applicable ({what})"
    if gate.higher_is_better:
        bound, op = reference - allowed, ">="
        held = value >= bound
    else:
        bound, op = reference + allowed, "<="
        held = value <= bound
    return held, (
        f"{gate.metric} {_num(value)} {op} {_num(bound)} (promoted {promoted.name} {_num(reference)}, "
        f"maxRegression {_num(allowed)})"
    )


def _num(value: float) -> str:
    return f"{value:.4g}"
