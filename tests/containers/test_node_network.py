"""The real node's network is host-wide (one bridge, one pod range), so what one node leaves
behind meets the next: these tests hold the node to leaving nothing, and to being alone."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from kubetrain.devcluster import realnode
from kubetrain.devcluster.cluster import ClusterError, LocalCluster

pytestmark = [pytest.mark.containers, pytest.mark.timeout(600)]

# A bridge and namespace of the test's own: the node's bridge may be in use by the package's node.
BRIDGE = "kt-leftover0"
NAMESPACE = "kt-leftover"


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


@pytest.fixture
def pod_left_on_a_bridge() -> Iterator[None]:
    """What a killed node leaves: a namespace holding a pod address, its veth on the bridge."""
    ip("netns", "delete", NAMESPACE, check=False)
    ip("link", "delete", BRIDGE, check=False)
    ip("link", "add", BRIDGE, "type", "bridge")
    ip("netns", "add", NAMESPACE)
    try:
        ip("link", "add", "kt-leftover-h", "type", "veth", "peer", "name", "eth0", "netns", NAMESPACE)
        ip("link", "set", "kt-leftover-h", "master", BRIDGE, "up")
        ip("-n", NAMESPACE, "address", "add", "10.85.0.3/16", "dev", "eth0")
        ip("-n", NAMESPACE, "link", "set", "eth0", "up")
        yield
    finally:
        ip("netns", "delete", NAMESPACE, check=False)
        ip("link", "delete", BRIDGE, check=False)


def test_deleting_a_left_pods_veth_takes_its_address_off_the_bridge(pod_left_on_a_bridge: None) -> None:
    assert realnode.link_names(ip("-o", "link", "show", "master", BRIDGE, "type", "veth").stdout) == ["kt-leftover-h"]

    realnode.delete_veths(BRIDGE)

    assert ip("-o", "link", "show", "master", BRIDGE).stdout == ""
    assert "10.85.0.3" not in ip("-n", NAMESPACE, "-o", "address", "show").stdout, "the pod's end went with it"


def test_pod_network_namespaces_are_mounted_under_the_node_state(real_cluster: LocalCluster) -> None:
    """So the node's stop, which unmounts everything under its state, ends them (CoreDNS runs)."""
    state = str(real_cluster.real_node_paths.state.resolve())
    with open("/proc/self/mounts") as mounts:
        namespaces = [line.split()[1] for line in mounts if line.split()[2] == "nsfs"]
    assert any(path.startswith(state) for path in namespaces), namespaces


def test_a_second_real_node_on_the_host_is_refused_while_one_runs(real_cluster: LocalCluster,
                                                                   tmp_path: Path) -> None:
    second = LocalCluster(tmp_path / "second", pools=[], local_node=False, real_node=True)
    with pytest.raises(ClusterError) as refused:
        second.start(timeout=60, log=lambda _: None)
    assert str(real_cluster.state_dir) in str(refused.value) and "dev --state-dir" in str(refused.value)
    assert realnode.host_owner() == real_cluster.state_dir
    assert not second.running()
