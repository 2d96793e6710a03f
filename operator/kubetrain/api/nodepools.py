"""The operator's node-pool catalogue: which pools exist and how to land pods on them.

Operator configuration, not a CRD: cluster admins describe their pools once (YAML given to
`kubetrain operator run --node-pools`), users only name a pool in spec.nodePool.
"""

from __future__ import annotations

from enum import StrEnum
from importlib import resources
from typing import Any

import yaml
from pydantic import Field

from kubetrain.api.base import CamelModel

POOL_LABEL = "kubetrain.io/node-pool"
REGION_LABEL = "topology.kubernetes.io/region"
DEFAULT_GPU_RESOURCE = "nvidia.com/gpu"


class TolerationOperator(StrEnum):
    EQUAL = "Equal"
    EXISTS = "Exists"


class Toleration(CamelModel):
    """core/v1 Toleration."""

    key: str | None = Field(default=None, description="Taint key; unset with Exists tolerates every taint.")
    operator: TolerationOperator = Field(default=TolerationOperator.EQUAL, description="Equal or Exists.")
    value: str | None = Field(default=None, description="Taint value (Equal only).")
    effect: str | None = Field(default=None, description="NoSchedule, PreferNoSchedule or NoExecute; unset: all.")
    toleration_seconds: int | None = Field(default=None, description="How long a NoExecute taint is tolerated.")


class NodePool(CamelModel):
    node_selector: dict[str, str] = Field(description="Labels that select the pool's nodes.")
    tolerations: list[Toleration] = Field(default_factory=list, description="Tolerations of the pool's taints.")
    gpu_resource: str = Field(default=DEFAULT_GPU_RESOURCE, description="Extended resource name of the GPUs.")
    gpus_per_node: int = Field(default=0, ge=0, description="GPUs of one node: the most one worker can ask for.")
    region: str | None = Field(default=None, description="Region of every node of the pool, if they share one.")
    gpu_product: str | None = Field(default=None, description="GPU model, as nvidia.com/gpu.product labels it.")
    cpu_per_node: str | None = Field(default=None, description="Allocatable CPU of one node, for information.")
    memory_per_node: str | None = Field(default=None, description="Allocatable memory of one node, for information.")
    price_per_gpu_hour: float | None = Field(
        default=None, ge=0, description="Price of one GPU-hour on the pool, for status.cost (any currency)."
    )


class NodePoolCatalogue(CamelModel):
    pools: dict[str, NodePool] = Field(default_factory=dict, description="Node pools by name.")

    def names(self) -> list[str]:
        return sorted(self.pools)


def load_catalogue(document: Any) -> NodePoolCatalogue:
    """`document` is yaml.safe_load of the catalogue file; reading the file is the caller's job."""
    return NodePoolCatalogue.model_validate(document)


def _pool_selector(name: str) -> dict[str, str]:
    return {POOL_LABEL: name}


def default_catalogue() -> NodePoolCatalogue:
    """The dev cluster's pools (kubetrain/dev_nodepools.yaml, from which kubetrain.devcluster makes
    the nodes) and the local node's, so `kubetrain dev up` plus `kubetrain operator run` works
    without a catalogue file."""
    gpu_taint = Toleration(key=DEFAULT_GPU_RESOURCE, value="present", effect="NoSchedule")
    text = (resources.files("kubetrain") / "dev_nodepools.yaml").read_text()
    declared: dict[str, dict[str, Any]] = yaml.safe_load(text)
    pools = {
        name: NodePool(
            node_selector=_pool_selector(name),
            tolerations=[gpu_taint] if pool.get("gpus_per_node") else [],
            gpus_per_node=pool.get("gpus_per_node", 0),
            # A pool whose nodes share a region has it; the CPU pool spans two.
            region=pool["regions"][0] if len(set(pool["regions"])) == 1 else None,
            gpu_product=pool.get("gpu_product"),
            cpu_per_node=pool["cpu"],
            memory_per_node=pool["memory"],
            price_per_gpu_hour=pool.get("price_per_gpu_hour"),
        )
        for name, pool in declared.items()
    }
    return NodePoolCatalogue(
        pools={
            **pools,
            "local": NodePool(
                node_selector=_pool_selector("local"),
                tolerations=[Toleration(key="kubetrain.io/local", value="true", effect="NoSchedule")],
                region="eu-west-1",
            ),
        }
    )
