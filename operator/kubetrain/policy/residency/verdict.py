"""What residency decided about one job: the violations, and the regions its pods must stay in."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from kubetrain.api.residency import Enforcement


class Violation(BaseModel):
    """One broken rule, phrased so the user can fix it without reading the policy."""

    model_config = ConfigDict(frozen=True)

    policy: str = Field(description="The policy's name, or the operator default that refused.")
    rule: str = Field(description="The policy field that refused, e.g. spec.allowedData.")
    field: str = Field(description="The job field that broke it, e.g. spec.dataset.uri.")
    value: str = Field(description="The offending value (as written).")
    allowed: list[str] = Field(description="What the rule allows.")
    reason: str = Field(default="", description="Why the value cannot be checked or matched, when not obvious.")
    enforcement: Enforcement = Enforcement.ENFORCE

    def message(self) -> str:
        why = f" ({self.reason})" if self.reason else ""
        allowed = ", ".join(self.allowed) if self.allowed else "nothing"
        return (
            f"{self.field}: {self.value!r} breaks DataResidencyPolicy {self.policy} {self.rule}{why}; "
            f"allowed: {allowed}"
        )


class ResidencyVerdict(BaseModel):
    model_config = ConfigDict(frozen=True)

    policies: list[str] = Field(default_factory=list, description="Policies selecting the job's namespace.")
    violations: list[Violation] = Field(default_factory=list)
    regions: list[str] | None = Field(
        default=None, description="Regions the pods must be pinned to (Enforce policies only); None: no constraint."
    )

    @property
    def blocking(self) -> list[Violation]:
        return [v for v in self.violations if v.enforcement == Enforcement.ENFORCE]

    @property
    def audited(self) -> list[Violation]:
        return [v for v in self.violations if v.enforcement == Enforcement.AUDIT]

    def summary(self, violations: list[Violation] | None = None) -> str:
        return "; ".join(v.message() for v in (self.violations if violations is None else violations))


ALLOW_ALL = ResidencyVerdict()
"""The verdict when no policy applies and the operator's default allows everything."""
