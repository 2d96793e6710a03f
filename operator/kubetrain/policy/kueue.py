"""What Kueue said about a job's Workload, read from the Workload and the ResourceFlavors its
admission names (fetched by controller/kueue.py on every reconcile of a labelled job). Pure: the
planner (plan/kueue.py) decides from these facts alone."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from kubetrain.api.kueue import ADMITTED, EVICTED, FINISHED, QUOTA_RESERVED, Placement


class KueueFacts(BaseModel):
    """The job's Workload as read (None: not created yet) and the specs of the ResourceFlavors
    named in its admission, by name."""

    model_config = ConfigDict(frozen=True)

    workload: dict[str, Any] | None = None
    priority: int | None = Field(
        default=None, description="The value of the WorkloadPriorityClass the job names, read while its Workload is "
        "to be created; None when it names none or the class does not exist.",
    )
    flavors: dict[str, dict[str, Any]] = Field(default_factory=dict)


def condition(workload: dict[str, Any], type_: str) -> dict[str, Any] | None:
    return next((c for c in (workload.get("status") or {}).get("conditions") or [] if c.get("type") == type_), None)


def is_true(workload: dict[str, Any], type_: str) -> bool:
    found = condition(workload, type_)
    return found is not None and found.get("status") == "True"


def admitted(workload: dict[str, Any]) -> bool:
    """Admitted and not being evicted: the job may run."""
    return is_true(workload, ADMITTED) and not is_true(workload, EVICTED)


def holds_quota(workload: dict[str, Any]) -> bool:
    return is_true(workload, QUOTA_RESERVED) or bool((workload.get("status") or {}).get("admission"))


def finished(workload: dict[str, Any]) -> bool:
    return is_true(workload, FINISHED)


def cluster_queue(workload: dict[str, Any]) -> str:
    return str(((workload.get("status") or {}).get("admission") or {}).get("clusterQueue", ""))


def flavor_names(workload: dict[str, Any]) -> set[str]:
    """Every ResourceFlavor the admission assigns, to fetch before planning."""
    assignments = _assignments(workload)
    return {str(f) for a in assignments for f in (a.get("flavors") or {}).values()}


def placements(facts: KueueFacts) -> dict[str, Placement]:
    """Per pod set (role): the node labels and tolerations of its admitted flavours."""
    assignments = _assignments(facts.workload)
    out: dict[str, Placement] = {}
    for assignment in assignments:
        selector: dict[str, str] = {}
        tolerations: list[dict[str, Any]] = []
        for flavor in sorted(set((assignment.get("flavors") or {}).values())):
            spec = facts.flavors.get(str(flavor)) or {}
            selector.update(spec.get("nodeLabels") or {})
            tolerations += [t for t in spec.get("tolerations") or [] if t not in tolerations]
        out[str(assignment["name"])] = Placement(node_selector=selector, tolerations=tolerations)
    return out


def admitted_counts(facts: KueueFacts) -> dict[str, int]:
    """Per pod set (role): the pods Kueue admitted, where it says (a partial admission admits fewer
    than the pod set's count)."""
    assignments = _assignments(facts.workload)
    return {str(a["name"]): int(a["count"]) for a in assignments if isinstance(a.get("count"), int)}


def _assignments(workload: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The admission's pod set assignments (none before Kueue admits the Workload)."""
    if workload is None:
        return []
    return list(((workload.get("status") or {}).get("admission") or {}).get("podSetAssignments") or [])
