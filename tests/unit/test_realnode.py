"""The real node's configuration and image naming: pure functions, so the settings each host fact
needs (shared/REAL-NODE.md) are pinned by tests rather than rediscovered."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from kubetrain.devcluster import images, realnode
from kubetrain.devcluster.realnode import RealNodePaths

PATHS = RealNodePaths(state=Path("/s"), images_root=Path("/c/containerd"), registry_root=Path("/c/registry"))


def test_containerd_restricts_oom_score_adj_and_wires_cni_and_the_pause_image() -> None:
    config = realnode.containerd_config(PATHS)
    assert "restrict_oom_score_adj = true" in config, "these hosts refuse negative oom_score_adj"
    assert f'sandbox_image = "{realnode.PAUSE_IMAGE}"' in config
    assert 'conf_dir = "/s/cni/net.d"' in config and 'root = "/c/containerd"' in config


def test_the_cni_bridge_keeps_its_ipam_state_per_cluster() -> None:
    bridge = realnode.cni_conflist(PATHS)["plugins"][0]
    assert bridge["ipam"]["dataDir"] == "/s/cni/ipam" and bridge["hairpinMode"] is True
    assert json.dumps(bridge["ipam"]["ranges"]) == json.dumps([[{"subnet": realnode.POD_SUBNET}]])


def test_kubelet_runs_on_cgroup_v1_and_kube_proxy_masquerades_everything() -> None:
    kubelet = realnode.kubelet_config(PATHS, "192.0.2.2", 10250, 10248, Path("/ca.crt"))
    assert kubelet["failCgroupV1"] is False and kubelet["cgroupDriver"] == "cgroupfs"
    assert kubelet["clusterDNS"] == [realnode.DNS_SERVICE_IP] and kubelet["readOnlyPort"] == 0
    assert kubelet["authentication"]["anonymous"]["enabled"] is False
    proxy = realnode.kube_proxy_config(Path("/kubeconfig"), 1, 2)
    assert proxy["iptables"]["masqueradeAll"] is True, "no br_netfilter on these hosts"
    assert yaml.safe_load(yaml.safe_dump(proxy)) == proxy


def test_coredns_runs_unprivileged_behind_the_dns_service_port() -> None:
    objects = {o["kind"]: o for o in realnode.coredns_manifests("kubetrain.local/coredns:v1")}
    pod = objects["Deployment"]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["containers"][0]["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    ports = {(p["port"], p["targetPort"], p["protocol"]) for p in objects["Service"]["spec"]["ports"]}
    assert ports == {(53, 1053, "UDP"), (53, 1053, "TCP")}
    assert objects["Service"]["spec"]["clusterIP"] == realnode.DNS_SERVICE_IP


def test_images_are_named_as_kubelet_names_them() -> None:
    assert images._containerd_name("kubetrain/trainer:0.1.0-cpu") == "docker.io/kubetrain/trainer:0.1.0-cpu"
    assert images._containerd_name("kubetrain.local/pause:3.10") == "kubetrain.local/pause:3.10"
    assert images._containerd_name("localhost:5000/x:1") == "localhost:5000/x:1"
    assert images._containerd_name("busybox:1") == "docker.io/busybox:1"


def test_an_image_hash_follows_its_files_names_and_build_arguments(tmp_path: Path) -> None:
    (tmp_path / "a").write_text("one")
    first = images.content_hash([tmp_path / "a"], tmp_path, ["TORCH=torch==2.15.0"])
    assert first == images.content_hash([tmp_path / "a"], tmp_path, ["TORCH=torch==2.15.0"])
    assert first != images.content_hash([tmp_path / "a"], tmp_path, ["TORCH="])
    (tmp_path / "a").write_text("two")
    assert first != images.content_hash([tmp_path / "a"], tmp_path, ["TORCH=torch==2.15.0"])


def test_a_recipe_hash_is_known_without_docker() -> None:
    repo = Path(__file__).resolve().parents[2]
    operator, trainer = images.operator_image(repo), images.trainer_cpu_image(repo)
    assert operator.content_hash == images.operator_image(repo).content_hash
    assert operator.content_hash != trainer.content_hash and len(trainer.content_hash) == 16


def test_pod_network_namespaces_live_under_the_node_state_that_stop_unmounts() -> None:
    assert "netns_mounts_under_state_dir = true" in realnode.containerd_config(PATHS), (
        "under /var/run/netns a stopped node's namespaces outlive it, with their pods' IPs on the bridge"
    )


def test_link_names_are_read_from_ip_one_line_output() -> None:
    output = ("7: veth3f2a1b0c@if2: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 master kubetrain0 state UP\n"
              "9: vethd00d@if3: <BROADCAST,MULTICAST> mtu 1500 master kubetrain0 state DOWN\n")
    assert realnode.link_names(output) == ["veth3f2a1b0c", "vethd00d"]
    assert realnode.link_names("") == []
