"""The local control plane is real: the scheduler places GPU pods by pool, taint and capacity,
KWOK runs them, and tests can end a pod on demand."""

from __future__ import annotations

from typing import Any

import kubernetes
import pytest

from kubetrain.devcluster.cluster import LocalCluster
from kubetrain.devcluster.nodepools import GPU_RESOURCE, POOL_LABEL, REGION_LABEL
from tests.helpers import wait_for

pytestmark = pytest.mark.cluster

GPU_TOLERATION = {"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}


def gpu_pod_spec(gpus: int, pool: str) -> dict[str, Any]:
    return {
        "nodeSelector": {POOL_LABEL: pool},
        "tolerations": [GPU_TOLERATION],
        "containers": [
            {
                "name": "main",
                "image": "trainer:dev",
                "resources": {"requests": {GPU_RESOURCE: str(gpus)}, "limits": {GPU_RESOURCE: str(gpus)}},
            }
        ],
    }


def test_node_pools_are_registered_and_ready(api: kubernetes.client.ApiClient) -> None:
    nodes = kubernetes.client.CoreV1Api(api).list_node().items
    by_pool: dict[str, list[Any]] = {}
    for node in nodes:
        by_pool.setdefault(node.metadata.labels[POOL_LABEL], []).append(node)
    assert set(by_pool) >= {"a100-eu", "h100-us", "cpu"}
    for node in by_pool["a100-eu"]:
        assert node.metadata.labels[REGION_LABEL] == "eu-west-1"
        assert node.metadata.labels["nvidia.com/gpu.product"] == "NVIDIA-A100-SXM4-80GB"
        assert node.status.allocatable[GPU_RESOURCE] == "8"
        assert [(t.key, t.value, t.effect) for t in node.spec.taints] == [
            (GPU_RESOURCE, "present", "NoSchedule")
        ]
    assert {n.metadata.labels[REGION_LABEL] for n in by_pool["h100-us"]} == {"us-east-1"}
    assert {n.metadata.labels[REGION_LABEL] for n in by_pool["cpu"]} == {"eu-west-1", "us-east-1"}
    for node in nodes:
        ready = {c.type: c.status for c in node.status.conditions}["Ready"]
        assert ready == "True", node.metadata.name


def test_scheduler_binds_gpu_deployment_to_requested_pool(
    api: kubernetes.client.ApiClient, namespace: str
) -> None:
    apps = kubernetes.client.AppsV1Api(api)
    core = kubernetes.client.CoreV1Api(api)
    labels = {"app": "gpu-smoke"}
    apps.create_namespaced_deployment(
        namespace,
        {
            "metadata": {"name": "gpu-smoke"},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {"metadata": {"labels": labels}, "spec": gpu_pod_spec(2, "a100-eu")},
            },
        },
    )

    def running_pod() -> Any:
        pods = core.list_namespaced_pod(namespace, label_selector="app=gpu-smoke").items
        return next((p for p in pods if p.status.phase == "Running"), None)

    pod = wait_for(running_pod, what="the Deployment's pod to be Running")
    node = core.read_node(pod.spec.node_name)
    assert node.metadata.labels[POOL_LABEL] == "a100-eu"
    assert pod.status.pod_ip, "KWOK assigns a pod IP"


def test_pod_asking_more_gpus_than_any_node_stays_pending(
    api: kubernetes.client.ApiClient, namespace: str
) -> None:
    core = kubernetes.client.CoreV1Api(api)
    core.create_namespaced_pod(namespace, {"metadata": {"name": "too-big"}, "spec": gpu_pod_spec(9, "a100-eu")})

    def failed_scheduling() -> Any:
        events = core.list_namespaced_event(
            namespace, field_selector="involvedObject.name=too-big,reason=FailedScheduling"
        ).items
        return events[0] if events else None

    event = wait_for(failed_scheduling, what="a FailedScheduling event")
    assert "Insufficient nvidia.com/gpu" in event.message
    pod = core.read_namespaced_pod("too-big", namespace)
    assert pod.status.phase == "Pending"
    assert pod.spec.node_name is None


def test_gpu_pod_without_toleration_is_not_placed_on_gpu_pool(
    api: kubernetes.client.ApiClient, namespace: str
) -> None:
    core = kubernetes.client.CoreV1Api(api)
    spec = gpu_pod_spec(1, "a100-eu")
    spec["tolerations"] = []
    core.create_namespaced_pod(namespace, {"metadata": {"name": "untolerated"}, "spec": spec})

    def failed_scheduling() -> Any:
        events = core.list_namespaced_event(
            namespace, field_selector="involvedObject.name=untolerated,reason=FailedScheduling"
        ).items
        return events[0] if events else None

    assert "untolerated taint" in wait_for(failed_scheduling, what="FailedScheduling").message


@pytest.mark.parametrize(
    ("outcome", "exit_code"), [("Succeeded", 0), ("Failed", 3)], ids=["succeed", "fail"]
)
def test_annotation_ends_a_pod_on_demand(
    api: kubernetes.client.ApiClient, namespace: str, outcome: str, exit_code: int
) -> None:
    core = kubernetes.client.CoreV1Api(api)
    core.create_namespaced_pod(namespace, {"metadata": {"name": "p"}, "spec": gpu_pod_spec(1, "h100-us")})
    wait_for(lambda: core.read_namespaced_pod("p", namespace).status.phase == "Running", what="Running")
    core.patch_namespaced_pod(
        "p",
        namespace,
        {
            "metadata": {
                "annotations": {
                    "kwok.kubetrain.io/outcome": outcome,
                    "kwok.kubetrain.io/exit-code": str(exit_code),
                    "kwok.kubetrain.io/termination-message": '{"outcome": "%s"}' % outcome,
                }
            }
        },
    )
    pod = wait_for(
        lambda: (p := core.read_namespaced_pod("p", namespace)).status.phase == outcome and p,
        what=f"phase {outcome}",
    )
    terminated = pod.status.container_statuses[0].state.terminated
    assert terminated.exit_code == exit_code
    assert terminated.message == '{"outcome": "%s"}' % outcome


def test_deleted_pod_disappears(api: kubernetes.client.ApiClient, namespace: str) -> None:
    core = kubernetes.client.CoreV1Api(api)
    core.create_namespaced_pod(namespace, {"metadata": {"name": "gone"}, "spec": gpu_pod_spec(1, "a100-eu")})
    wait_for(lambda: core.read_namespaced_pod("gone", namespace).status.phase == "Running", what="Running")
    core.delete_namespaced_pod("gone", namespace)
    wait_for(
        lambda: not core.list_namespaced_pod(namespace, field_selector="metadata.name=gone").items,
        what="the pod to be removed",
    )


def test_two_clusters_run_side_by_side(cluster: LocalCluster, tmp_path: Any) -> None:
    second = LocalCluster(tmp_path / "second", pools=[], local_node=False)
    try:
        second.start()
        assert second.running() and cluster.running()
        assert second.server != cluster.server
        ns = second.kubectl("get", "namespaces", "-o", "name").stdout
        assert "namespace/default" in ns
    finally:
        second.stop()
    assert not second.running()
    assert cluster.running()
