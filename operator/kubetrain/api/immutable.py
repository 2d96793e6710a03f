"""Which parts of a TrainingJob's spec are fixed once its pods first started (status.firstStartTime
set; it is never cleared, unlike startTime, which a suspension resets): what the pods read and
how they are built. Changing them under running pods would make status and provenance describe
data the pods never read, and the next attempt resume the old checkpoint on the new data.
spec.workers may change (the group rolls into a new attempt, not counted as a failure,
plan/job.py), and so may runPolicy (suspend, deadlines, cleanup) and evaluation (judged once
the job has succeeded).

Enforced by CEL transition rules on the CRD's root (they see the old status), generated from
FROZEN; spec.podTemplate.spec, whose free-form schema CEL cannot compare, by the `spec` webhook
with frozen_changes().
"""

from __future__ import annotations

from typing import Any

FROZEN = ("runtime", "image", "command", "args", "task", "nprocPerNode", "nodePool", "resources", "dataset",
          "output", "env", "ray", "model", "elastic")
# startTime too: a job started by an operator that did not yet write firstStartTime.
STARTED = "has(oldSelf.status) && (has(oldSelf.status.firstStartTime) || has(oldSelf.status.startTime))"


def frozen_message(field: str) -> str:
    return (
        f"spec.{field} cannot change once the job has started (status.firstStartTime is set, even while "
        "suspended): its pods already read it; create a new job for new data or settings (spec.workers, runPolicy "
        "and evaluation may change)"
    )


def transition_rules() -> list[dict[str, str]]:
    """One rule per frozen field, so the refusal names it."""
    rules = []
    for field in FROZEN:
        same = (f"(has(self.spec.{field}) ? has(oldSelf.spec.{field}) && self.spec.{field} == oldSelf.spec.{field}"
                f" : !has(oldSelf.spec.{field}))")
        rules.append({"rule": f"!({STARTED}) || {same}", "message": frozen_message(field)})
    present = "has({0}.spec.podTemplate) && has({0}.spec.podTemplate.metadata)"
    metadata = (f"({present.format('self')} ? {present.format('oldSelf')} && self.spec.podTemplate.metadata == "
                f"oldSelf.spec.podTemplate.metadata : !({present.format('oldSelf')}))")
    rules.append({"rule": f"!({STARTED}) || {metadata}", "message": frozen_message("podTemplate.metadata")})
    return rules


def frozen_changes(new: dict[str, Any], old: dict[str, Any] | None) -> list[str]:
    """Refusal messages for an update that changes a frozen field of a started job."""
    if old is None or not started(old):
        return []
    before, after = old.get("spec") or {}, new.get("spec") or {}
    changed = [f for f in FROZEN if before.get(f) != after.get(f)]
    template_before, template_after = before.get("podTemplate") or {}, after.get("podTemplate") or {}
    changed += [f"podTemplate.{part}" for part in ("metadata", "spec")
                if (template_before.get(part) or {}) != (template_after.get(part) or {})]
    return [frozen_message(field) for field in changed]


def started(raw: dict[str, Any]) -> bool:
    """STARTED, in Python."""
    status = raw.get("status") or {}
    return bool(status.get("firstStartTime") or status.get("startTime"))
