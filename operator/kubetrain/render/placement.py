"""Node pool -> where and with what the workers are scheduled: node selector, tolerations,
region affinity and resources."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from kubetrain.api.nodepools import REGION_LABEL, NodePool, NodePoolCatalogue
from kubetrain.api.spec import TrainingJobSpec
from kubetrain.render.errors import InvalidSpec


class Placement(BaseModel):
    """The pod fields placement owns, in Kubernetes JSON shape."""

    model_config = ConfigDict(frozen=True)

    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: list[dict[str, Any]] = Field(default_factory=list)
    affinity: dict[str, Any] | None = None
    resources: dict[str, dict[str, str]] = Field(default_factory=dict)


def placement_errors(spec: TrainingJobSpec, catalogue: NodePoolCatalogue) -> list[InvalidSpec]:
    if spec.node_pool is None:
        return []
    pool = catalogue.pools.get(spec.node_pool)
    if pool is None:
        known = ", ".join(catalogue.names()) or "(none configured)"
        return [
            InvalidSpec(
                "spec.nodePool",
                spec.node_pool,
                f"a pool of the operator's catalogue: {known}",
                "set spec.nodePool to one of those pools, or ask the cluster admin to add this one to the catalogue",
            )
        ]
    gpus = spec.resources.gpus
    if gpus > 0 and pool.gpus_per_node == 0:
        gpu_pools = ", ".join(name for name in catalogue.names() if catalogue.pools[name].gpus_per_node > 0)
        return [
            InvalidSpec(
                "spec.resources.gpus",
                gpus,
                f"0 on pool {spec.node_pool}, whose nodes have no GPUs",
                f"set spec.nodePool to a GPU pool ({gpu_pools or 'none configured'}) or spec.resources.gpus to 0",
            )
        ]
    if gpus > pool.gpus_per_node:
        return [
            InvalidSpec(
                "spec.resources.gpus",
                gpus,
                f"at most {pool.gpus_per_node} (the GPUs of one {spec.node_pool} node; one worker runs on one node)",
                f"set spec.resources.gpus to {pool.gpus_per_node} or less and raise spec.workers "
                "to get more GPUs in total",
            )
        ]
    return []


def place(spec: TrainingJobSpec, catalogue: NodePoolCatalogue, allowed_regions: list[str] | None = None) -> Placement:
    """Raises the first InvalidSpec of placement_errors, so a caller that skipped validation
    still never schedules onto a pool that cannot hold the workers.

    `allowed_regions` is the residency verdict's region list (None: no policy constrains it):
    the pods' required region affinity is its intersection with the pool's own region, so a pool
    spanning several regions still only gets pods in the allowed ones."""
    errors = placement_errors(spec, catalogue)
    if errors:
        raise errors[0]
    pool = catalogue.pools[spec.node_pool] if spec.node_pool is not None else None
    regions = _regions(pool.region if pool else None, allowed_regions)
    if regions == []:
        raise InvalidSpec(
            "spec.nodePool",
            spec.node_pool,
            f"a pool in the regions the namespace's residency policies allow ({', '.join(allowed_regions or [])})",
            "choose a pool in one of those regions",
        )
    return Placement(
        node_selector=dict(pool.node_selector) if pool else {},
        tolerations=[t.to_k8s() for t in pool.tolerations] if pool else [],
        affinity=_region_affinity(regions) if regions else None,
        resources=_resources(spec, pool),
    )


def _regions(pool_region: str | None, allowed: list[str] | None) -> list[str] | None:
    if allowed is None:
        return [pool_region] if pool_region else None
    if pool_region is None:
        return sorted(allowed)
    return [pool_region] if pool_region in allowed else []


def _region_affinity(regions: list[str]) -> dict[str, Any]:
    term = {"matchExpressions": [{"key": REGION_LABEL, "operator": "In", "values": list(regions)}]}
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [term]}}}


def _resources(spec: TrainingJobSpec, pool: NodePool | None) -> dict[str, dict[str, str]]:
    """GPUs and memory are limited at their request (GPUs cannot be overcommitted, and a memory
    overrun should kill this worker rather than a neighbour); CPU is only requested, because a
    CPU limit throttles data loading for no gain."""
    requests: dict[str, str] = {}
    limits: dict[str, str] = {}
    if spec.resources.cpu is not None:
        requests["cpu"] = spec.resources.cpu
    if spec.resources.memory is not None:
        requests["memory"] = limits["memory"] = spec.resources.memory
    if spec.resources.gpus > 0 and pool is not None:
        requests[pool.gpu_resource] = limits[pool.gpu_resource] = str(spec.resources.gpus)
    return {key: value for key, value in (("requests", requests), ("limits", limits)) if value}
