"""Namespace ResourceQuotas, judged for a whole attempt before any of its pods is created (pure).
The API server admits pods one at a time, so a group that exceeds a quota would get some pods
created (holding GPUs, waiting for peers that never come) and the rest refused; judged as one
here, the job instead waits Queued (reason QuotaExceeded) with none created, and starts once the
quota has room for all of them. The API server still enforces every quota; this only avoids the
partial group. Quotas with scopes or a scope selector (which select pods by priority class,
termination, ...) are left to the API server."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from typing import Any

from kubernetes.utils import parse_quantity
from pydantic import BaseModel, ConfigDict, Field

# Resources a quota may name bare (meaning their requests) beside `requests.<name>`.
_BARE = ("cpu", "memory", "ephemeral-storage")


class QuotaFacts(BaseModel):
    """The namespace's ResourceQuotas, fetched by the caller."""

    model_config = ConfigDict(frozen=True)

    quotas: list[dict[str, Any]] = Field(default_factory=list, description="Raw ResourceQuota objects.")


def demand(pods: list[dict[str, Any]]) -> dict[str, Decimal]:
    """What the pods count against a quota, by quota key: pods, requests.<r> (and bare cpu, memory,
    ephemeral-storage), limits.<r>. A container without a request for a resource it limits
    requests its limit, as the API server defaults it."""
    total: dict[str, Decimal] = defaultdict(Decimal)
    for pod in pods:
        total["pods"] += 1
        for container in (pod.get("spec") or {}).get("containers") or []:
            resources = container.get("resources") or {}
            limits = resources.get("limits") or {}
            requests = {**limits, **(resources.get("requests") or {})}
            for name, quantity in requests.items():
                amount = Decimal(parse_quantity(quantity))
                total[f"requests.{name}"] += amount
                if name in _BARE:
                    total[name] += amount
            for name, quantity in limits.items():
                total[f"limits.{name}"] += Decimal(parse_quantity(quantity))
    return dict(total)


def quota_shortage(pods: list[dict[str, Any]], facts: QuotaFacts) -> str | None:
    """What the pods need beyond what the quotas have left, naming quota, resource and amounts;
    None when they all fit."""
    needed = demand(pods)
    short: list[str] = []
    for quota in facts.quotas:
        spec, status = quota.get("spec") or {}, quota.get("status") or {}
        if spec.get("scopes") or spec.get("scopeSelector"):
            continue
        hard, used = status.get("hard") or spec.get("hard") or {}, status.get("used") or {}
        name = (quota.get("metadata") or {}).get("name", "?")
        for key, limit in sorted(hard.items()):
            amount = needed.get(key, Decimal(0))
            left = max(Decimal(parse_quantity(limit)) - Decimal(parse_quantity(used.get(key, "0"))), Decimal(0))
            if amount > left:
                short.append(f"ResourceQuota {name}: {len(pods)} pods need {key} {_amount(amount)}, "
                             f"{_amount(left)} of {limit} left")
    return "; ".join(short) or None


def _amount(value: Decimal) -> str:
    return f"{value.normalize():f}"
