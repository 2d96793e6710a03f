"""The dev cluster's fake GPU node pools, as plain Node manifests for KWOK to manage. The pools are
declared in kubetrain/dev_nodepools.yaml, which the operator's built-in catalogue reads too
(api.nodepools.default_catalogue): a data file, as this package imports nothing of the operator.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field

KWOK_NODE_ANNOTATION = "kwok.x-k8s.io/node"
POOL_LABEL = "kubetrain.io/node-pool"
REGION_LABEL = "topology.kubernetes.io/region"
ZONE_LABEL = "topology.kubernetes.io/zone"
GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"
GPU_RESOURCE = "nvidia.com/gpu"
GPU_TAINT = {"key": GPU_RESOURCE, "value": "present", "effect": "NoSchedule"}


class DevNodePool(BaseModel):
    """One pool of identical fake nodes; `regions` lists one region per node."""

    model_config = ConfigDict(frozen=True)

    name: str
    regions: list[str]
    gpus_per_node: int = 0
    gpu_product: str | None = None
    cpu: str = "96"
    memory: str = "768Gi"
    taints: list[dict[str, str]] = Field(default_factory=list)


def default_pools() -> list[DevNodePool]:
    """The pools of kubetrain/dev_nodepools.yaml; their GPU nodes carry the GPU taint."""
    text = (resources.files("kubetrain") / "dev_nodepools.yaml").read_text()
    declared: dict[str, dict[str, Any]] = yaml.safe_load(text)
    return [
        DevNodePool(
            name=name,
            regions=pool["regions"],
            gpus_per_node=pool.get("gpus_per_node", 0),
            gpu_product=pool.get("gpu_product"),
            cpu=pool["cpu"],
            memory=pool["memory"],
            taints=[GPU_TAINT] if pool.get("gpus_per_node") else [],
        )
        for name, pool in declared.items()
    ]


def node_manifests(pool: DevNodePool) -> list[dict[str, Any]]:
    """Node objects for every node of `pool`; KWOK fills in status from `capacity`."""
    nodes = []
    for index, region in enumerate(pool.regions):
        labels = {
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
            "kubernetes.io/hostname": f"kwok-{pool.name}-{index}",
            "node.kubernetes.io/instance-type": "kwok",
            "type": "kwok",
            POOL_LABEL: pool.name,
            REGION_LABEL: region,
            ZONE_LABEL: f"{region}a",
        }
        capacity = {"cpu": pool.cpu, "memory": pool.memory, "pods": "110"}
        if pool.gpus_per_node:
            capacity[GPU_RESOURCE] = str(pool.gpus_per_node)
            if pool.gpu_product:
                labels[GPU_PRODUCT_LABEL] = pool.gpu_product
            labels["nvidia.com/gpu.count"] = str(pool.gpus_per_node)
        nodes.append(
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {
                    "name": f"kwok-{pool.name}-{index}",
                    "labels": labels,
                    "annotations": {KWOK_NODE_ANNOTATION: "fake"},
                },
                "spec": {"taints": [dict(t) for t in pool.taints]},
                "status": {"capacity": capacity, "allocatable": capacity},
            }
        )
    return nodes
