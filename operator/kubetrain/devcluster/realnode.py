"""A real node for the dev cluster: containerd (CRI), runc, CNI bridge networking, kubelet and
kube-proxy, all on this host, so pods run in containers with their own IPs and Services and DNS
work as on any cluster.

The facts behind each setting were checked by hand on these machines (shared/REAL-NODE.md):
the hosts are cgroup v1 (`failCgroupV1: false`), refuse negative oom_score_adj
(`restrict_oom_score_adj`), and have no br_netfilter (so kube-proxy masquerades all Service
traffic; otherwise a reply between two pods on one bridge would skip the reverse NAT).

One real node per host at a time: kube-proxy's iptables chains, the CNI bridge and its pod range
are host-wide. A node records its cluster in RUN_DIR, and a second one is refused while the first runs.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict

from kubetrain.devcluster.host import CNI_BIN_DIR

NODE_NAME = "node-0"
POD_SUBNET = "10.85.0.0/16"
BRIDGE = "kubetrain0"
CLUSTER_DOMAIN = "cluster.local"
DNS_SERVICE_IP = "10.96.0.10"
PAUSE_IMAGE = "kubetrain.local/pause:3.10"
COREDNS_IMAGE = "kubetrain.local/coredns"
# The node's image registry (distribution), on a fixed loopback port: Docker remembers which
# layers a registry already holds by its address, so a fixed one lets a rebuilt image upload only
# its changed layers, and containerd pull only those.
REGISTRY_ADDRESS = "127.0.0.1:5055"
# The CRI namespace kubelet's containers live in.
K8S_NAMESPACE = "k8s.io"
# Unix socket paths are limited to 108 bytes; test state directories are deep, so sockets live
# in a short per-host directory instead.
RUN_DIR = Path("/run/kubetrain")
# Which cluster's state directory the host's real node belongs to.
OWNER_FILE = RUN_DIR / "node-owner"


class RealNodePaths(BaseModel):
    """Where one real node keeps its files."""

    model_config = ConfigDict(frozen=True)

    state: Path  # per cluster: configs, kubelet root, CNI IPAM, containerd state
    images_root: Path  # per host, kept across clusters: containerd's content and snapshots
    registry_root: Path  # per host, kept across clusters: the registry's blobs

    @property
    def containerd_config(self) -> Path:
        return self.state / "containerd" / "config.toml"

    @property
    def containerd_socket(self) -> Path:
        return RUN_DIR / "containerd.sock"

    @property
    def cni_conf_dir(self) -> Path:
        return self.state / "cni" / "net.d"

    @property
    def kubelet_config(self) -> Path:
        return self.state / "kubelet" / "config.yaml"

    @property
    def kubelet_kubeconfig(self) -> Path:
        return self.state / "kubelet" / "kubeconfig"

    @property
    def kubelet_root(self) -> Path:
        return self.state / "kubelet" / "root"

    @property
    def kube_proxy_config(self) -> Path:
        return self.state / "kube-proxy" / "config.yaml"

    @property
    def registry_config(self) -> Path:
        return self.state / "registry" / "config.yaml"


def registry_config(paths: RealNodePaths) -> dict[str, Any]:
    return {
        "version": 0.1,
        "log": {"level": "warn"},
        "storage": {"filesystem": {"rootdirectory": str(paths.registry_root)}},
        "http": {"addr": REGISTRY_ADDRESS},
    }


def containerd_config(paths: RealNodePaths) -> str:
    """containerd 1.6's config (version 2), its CRI plugin wired to the node's CNI config."""
    cri = 'plugins."io.containerd.grpc.v1.cri"'
    return f"""version = 2
root = "{paths.images_root}"
state = "{paths.state / 'containerd' / 'state'}"

[grpc]
  address = "{paths.containerd_socket}"

[ttrpc]
  address = "{paths.containerd_socket}.ttrpc"

[{cri}]
  sandbox_image = "{PAUSE_IMAGE}"
  # This VM refuses negative oom_score_adj even for root: without this every sandbox fails.
  restrict_oom_score_adj = true
  # Pod network namespaces are mounted below the node's state, not /var/run/netns: stopping the
  # node unmounts them there, which ends each namespace and its veth with the pod's IP.
  netns_mounts_under_state_dir = true
  [{cri}.containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [{cri}.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
  [{cri}.cni]
    bin_dir = "{CNI_BIN_DIR}"
    conf_dir = "{paths.cni_conf_dir}"
"""


def cni_conflist(paths: RealNodePaths) -> dict[str, Any]:
    """One bridge with a host-local range; hairpin so a pod reaches itself through a Service."""
    return {
        "cniVersion": "1.0.0",
        "name": "kubetrain",
        "plugins": [
            {
                "type": "bridge",
                "bridge": BRIDGE,
                "isGateway": True,
                "ipMasq": True,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": POD_SUBNET}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": str(paths.state / "cni" / "ipam"),
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }


def kubelet_config(paths: RealNodePaths, address: str, port: int, healthz_port: int, ca_file: Path) -> dict[str, Any]:
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "failCgroupV1": False,  # the hosts are cgroup v1
        "cgroupDriver": "cgroupfs",
        "failSwapOn": False,
        "containerRuntimeEndpoint": f"unix://{paths.containerd_socket}",
        "address": address,
        "port": port,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": healthz_port,
        "readOnlyPort": 0,
        # The API server authenticates with the cluster CA's admin certificate (logs, exec).
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": False},
            "x509": {"clientCAFile": str(ca_file)},
        },
        "authorization": {"mode": "AlwaysAllow"},
        "clusterDNS": [DNS_SERVICE_IP],
        "clusterDomain": CLUSTER_DOMAIN,
        "resolvConf": "/etc/resolv.conf",
        "serializeImagePulls": False,
        # Test machines run with little free disk: never evict test pods or GC their images.
        "evictionHard": {"memory.available": "100Mi", "nodefs.available": "1%", "imagefs.available": "1%",
                         "nodefs.inodesFree": "1%"},
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "maxPods": 60,
    }


def kube_proxy_config(kubeconfig: Path, metrics_port: int, healthz_port: int) -> dict[str, Any]:
    return {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "mode": "iptables",
        "clientConnection": {"kubeconfig": str(kubeconfig)},
        "clusterCIDR": POD_SUBNET,
        "hostnameOverride": NODE_NAME,
        "metricsBindAddress": f"127.0.0.1:{metrics_port}",
        "healthzBindAddress": f"127.0.0.1:{healthz_port}",
        # No br_netfilter on these hosts: replies between pods on one bridge would bypass the
        # reverse NAT, so every Service connection is masqueraded through the host.
        "iptables": {"masqueradeAll": True},
        "conntrack": {"maxPerCore": 0},  # leave the host's conntrack table size alone
    }


def write_configs(
    paths: RealNodePaths,
    *,
    address: str,
    kubelet_port: int,
    kubelet_healthz_port: int,
    proxy_ports: tuple[int, int],
    ca_file: Path,
    kubelet_kubeconfig: dict[str, Any],
    admin_kubeconfig: Path,
) -> None:
    for directory in (paths.containerd_config.parent, paths.cni_conf_dir, paths.kubelet_root,
                      paths.kube_proxy_config.parent, paths.images_root, paths.registry_config.parent,
                      paths.registry_root, RUN_DIR):
        directory.mkdir(parents=True, exist_ok=True)
    paths.containerd_config.write_text(containerd_config(paths))
    (paths.cni_conf_dir / "10-kubetrain.conflist").write_text(json.dumps(cni_conflist(paths), indent=2))
    paths.kubelet_config.write_text(
        yaml.safe_dump(kubelet_config(paths, address, kubelet_port, kubelet_healthz_port, ca_file))
    )
    paths.kubelet_kubeconfig.write_text(yaml.safe_dump(kubelet_kubeconfig))
    paths.kubelet_kubeconfig.chmod(0o600)
    paths.registry_config.write_text(yaml.safe_dump(registry_config(paths)))
    paths.kube_proxy_config.write_text(
        yaml.safe_dump(kube_proxy_config(admin_kubeconfig, *proxy_ports))
    )


def registry_argv(registry: Path, paths: RealNodePaths) -> list[str]:
    return [str(registry), "serve", str(paths.registry_config)]


def containerd_argv(paths: RealNodePaths) -> list[str]:
    return ["/usr/bin/containerd", f"--config={paths.containerd_config}"]


def kubelet_argv(kubelet: Path, paths: RealNodePaths, address: str) -> list[str]:
    return [
        str(kubelet),
        f"--config={paths.kubelet_config}",
        f"--kubeconfig={paths.kubelet_kubeconfig}",
        f"--root-dir={paths.kubelet_root}",
        f"--cert-dir={paths.state / 'kubelet' / 'pki'}",
        f"--hostname-override={NODE_NAME}",
        f"--node-ip={address}",
        "--v=1",
    ]


def kube_proxy_argv(kube_proxy: Path, paths: RealNodePaths) -> list[str]:
    return [str(kube_proxy), f"--config={paths.kube_proxy_config}", "--v=1"]


def ctr_argv(paths: RealNodePaths) -> list[str]:
    """containerd's own client against the node's containerd, in the CRI's namespace."""
    return ["/usr/bin/ctr", f"--address={paths.containerd_socket}", f"--namespace={K8S_NAMESPACE}"]


def ctr(paths: RealNodePaths, *args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([*ctr_argv(paths), *args], capture_output=True, check=check)


def allow_forwarding_through_bridge() -> None:
    """Docker sets the FORWARD policy to DROP; pod traffic routed through the host (Service
    backends, the API server's Service) must pass. Idempotent."""
    for direction in ("-i", "-o"):
        rule = ["FORWARD", direction, BRIDGE, "-j", "ACCEPT"]
        if subprocess.run(["iptables", "-C", *rule], capture_output=True).returncode != 0:
            subprocess.run(["iptables", "-I", *rule], check=True, capture_output=True)


def stop_containers(paths: RealNodePaths) -> None:
    """After kubelet stops: kill every container's task and shim, so nothing of the node's pods
    outlives the cluster (kubelet leaves running containers behind on exit)."""
    if paths.containerd_socket.exists():
        listed = ctr(paths, "tasks", "ls", "-q", check=False)
        for task in listed.stdout.decode().split():
            ctr(paths, "tasks", "kill", "--signal=SIGKILL", task, check=False)
    kill_shims(paths)


def kill_shims(paths: RealNodePaths) -> None:
    """Shims are reparented to init and keep running after containerd exits; their command line
    names this node's containerd socket."""
    subprocess.run(["pkill", "-KILL", "-f", f"containerd-shim.*{paths.containerd_socket}"], capture_output=True)


def host_owner() -> Path | None:
    """The state directory of the cluster whose real node this host runs or last ran."""
    return Path(OWNER_FILE.read_text()) if OWNER_FILE.exists() else None


def claim_host(state_dir: Path) -> None:
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    OWNER_FILE.write_text(str(state_dir))


def release_host(state_dir: Path) -> None:
    if host_owner() == state_dir:
        OWNER_FILE.unlink(missing_ok=True)


def clear_leftovers(paths: RealNodePaths) -> None:
    """What a node that never ran its stop (its process killed) left: shims still running its
    pods, and their veths on the bridge. Each new node's IPAM starts empty and hands out the same
    addresses again (the operator Pod's among them); with two pods of one IP on the bridge, ARP
    answers for either, and connections to the live one are reset or refused at random. Deleting
    a veth on the host deletes its pair in the pod's namespace, and the address with it."""
    kill_shims(paths)
    delete_veths(BRIDGE)


def delete_veths(bridge: str) -> None:
    """Deletes every veth attached to `bridge` (none when there is no such bridge)."""
    listed = subprocess.run(["ip", "-o", "link", "show", "master", bridge, "type", "veth"],
                            capture_output=True, text=True)
    for name in link_names(listed.stdout if listed.returncode == 0 else ""):
        subprocess.run(["ip", "link", "delete", name], capture_output=True)


def link_names(ip_link_output: str) -> list[str]:
    """Interface names from `ip -o link show` lines (`12: veth1a2b@if3: <...> ...`)."""
    return [line.split(":", 2)[1].strip().split("@", 1)[0] for line in ip_link_output.splitlines() if ":" in line]


def unmount_under(*roots: Path) -> None:
    """Unmounts whatever pods left mounted (volumes, overlay rootfs, netns, shm) below `roots`,
    deepest first, so the state directory can be deleted."""
    prefixes = tuple(str(root.resolve()) + os.sep for root in roots)
    with open("/proc/self/mounts") as mounts:
        targets = [line.split()[1].encode().decode("unicode_escape") for line in mounts]
    for target in sorted((t for t in targets if t.startswith(prefixes)), key=len, reverse=True):
        subprocess.run(["umount", "-l", target], capture_output=True)


def coredns_manifests(image: str) -> list[dict[str, Any]]:
    """Cluster DNS: a headless Service's name resolves to its pods' IPs, the way torchrun's
    rendezvous finds worker 0. Listens on 1053 so it runs as non-root with no capabilities."""
    labels = {"k8s-app": "kube-dns"}
    corefile = f""".:1053 {{
    errors
    health :8080
    ready :8181
    kubernetes {CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {{
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
        ttl 5
    }}
    cache 5
}}
"""
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "coredns", "namespace": "kube-system"}},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": "system:coredns"},
            "rules": [
                {"apiGroups": [""], "resources": ["endpoints", "services", "pods", "namespaces"],
                 "verbs": ["list", "watch"]},
                {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["list", "watch"]},
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "system:coredns"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:coredns"},
            "subjects": [{"kind": "ServiceAccount", "name": "coredns", "namespace": "kube-system"}],
        },
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "coredns", "namespace": "kube-system"},
            "data": {"Corefile": corefile},
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "coredns", "namespace": "kube-system", "labels": labels},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "serviceAccountName": "coredns",
                        "dnsPolicy": "Default",
                        "securityContext": {"runAsNonRoot": True, "runAsUser": 65532,
                                            "seccompProfile": {"type": "RuntimeDefault"}},
                        "containers": [
                            {
                                "name": "coredns",
                                "image": image,
                                "imagePullPolicy": "Never",
                                "args": ["-conf", "/etc/coredns/Corefile"],
                                "ports": [{"containerPort": 1053, "protocol": "UDP", "name": "dns"},
                                          {"containerPort": 1053, "protocol": "TCP", "name": "dns-tcp"}],
                                "readinessProbe": {"httpGet": {"path": "/ready", "port": 8181},
                                                   "periodSeconds": 2},
                                "securityContext": {"allowPrivilegeEscalation": False,
                                                    "capabilities": {"drop": ["ALL"]},
                                                    "readOnlyRootFilesystem": True},
                                "volumeMounts": [{"name": "config", "mountPath": "/etc/coredns"}],
                            }
                        ],
                        "volumes": [{"name": "config", "configMap": {"name": "coredns"}}],
                    },
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "kube-dns", "namespace": "kube-system", "labels": labels},
            "spec": {
                "clusterIP": DNS_SERVICE_IP,
                "selector": labels,
                "ports": [
                    {"name": "dns", "port": 53, "targetPort": 1053, "protocol": "UDP"},
                    {"name": "dns-tcp", "port": 53, "targetPort": 1053, "protocol": "TCP"},
                ],
            },
        },
    ]
