"""One local Kubernetes control plane: etcd, kube-apiserver, kube-controller-manager,
kube-scheduler and a KWOK controller that runs the fake GPU node pools; optionally a real node
(containerd, kubelet, kube-proxy, CoreDNS: kubetrain.devcluster.realnode) whose pods run in
containers.

Everything listens on free 127.0.0.1 ports and lives under one state directory, so two clusters
can run side by side (one of them with a real node: its network is host-wide) and `stop` leaves
nothing behind. The state file lets a later process (the `kubetrain dev down` command, a test
session) find and stop a cluster another process started.
"""

from __future__ import annotations

import base64
import json
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from kubetrain.devcluster import host, images, kueue, processes, realnode
from kubetrain.devcluster.binaries import Binaries, Versions, cache_dir, ensure_binaries, ensure_kueue
from kubetrain.devcluster.nodepools import DevNodePool, default_pools, node_manifests
from kubetrain.devcluster.pki import Pki, write_pki
from kubetrain.devcluster.realnode import RealNodePaths

SERVICE_CIDR = "10.96.0.0/16"
SERVICE_IP = "10.96.0.1"
POD_CIDR = "10.244.0.0/16"
# Component order matters twice: start in this order, stop in reverse.
COMPONENTS = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kwok",
    "localnode",
    "registry",
    "containerd",
    "kubelet",
    "kube-proxy",
    "kueue",
)
REAL_NODE_COMPONENTS = ("registry", "containerd", "kubelet", "kube-proxy")
LOCAL_NODE_NAME = "local-0"
# Native gang placement (Kubernetes 1.37, beta, off by default): the API server serves
# scheduling.k8s.io/v1beta1 PodGroups and keeps pods' spec.schedulingGroup; the scheduler's
# GangScheduling plugin (enabled with the gate) binds a group's pods all at once or not at all.
FEATURE_GATES = "--feature-gates=GenericWorkload=true"
WORKLOAD_API = "--runtime-config=scheduling.k8s.io/v1beta1=true"
# The binaries' PATH needs: containerd runs runc, kubelet runs mount, kube-proxy iptables.
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class ClusterError(RuntimeError):
    """The cluster could not be started; the message names the component and its log file."""


class ClusterState(BaseModel):
    """What a running cluster left in its state directory."""

    ports: dict[str, int]
    pids: dict[str, int]
    executables: dict[str, str]
    real_node: bool = False


class LocalCluster:
    """A control plane rooted at `state_dir` (created if missing)."""

    def __init__(
        self,
        state_dir: Path,
        pools: list[DevNodePool] | None = None,
        local_node: bool = True,
        apiserver_args: list[str] | None = None,
        real_node: bool = False,
        kueue: bool = False,
        kwok_parallelism: int | None = None,
    ) -> None:
        self.state_dir = state_dir.resolve()
        # KWOK moves 4 pods through their stages at a time by default; a scale run raises it so
        # that the fake kubelet is not what the run measures.
        self.kwok_parallelism = kwok_parallelism
        self.apiserver_args = list(apiserver_args or [])
        self.pools = pools if pools is not None else default_pools()
        self.local_node = local_node
        self.real_node = real_node
        self.kueue = kueue
        self.components = [
            c
            for c in COMPONENTS
            if (local_node or c != "localnode")
            and (real_node or c not in REAL_NODE_COMPONENTS)
            and (kueue or c != "kueue")
        ]
        self._host_address = "127.0.0.1"

    # -- paths ---------------------------------------------------------------------------------
    @property
    def kubeconfig(self) -> Path:
        return self.state_dir / "kubeconfig"

    @property
    def _state_file(self) -> Path:
        return self.state_dir / "cluster.json"

    @property
    def pki(self) -> Pki:
        return Pki.in_directory(self.state_dir / "pki")

    def log_path(self, component: str) -> Path:
        return self.state_dir / "logs" / f"{component}.log"

    @property
    def real_node_paths(self) -> RealNodePaths:
        return RealNodePaths(
            state=self.state_dir / "realnode",
            images_root=cache_dir() / "containerd",
            registry_root=cache_dir() / "registry",
        )

    # -- state ---------------------------------------------------------------------------------
    def state(self) -> ClusterState | None:
        if not self._state_file.exists():
            return None
        return ClusterState.model_validate_json(self._state_file.read_text())

    def running(self) -> bool:
        state = self.state()
        return state is not None and all(
            processes.alive(pid, state.executables.get(name)) for name, pid in state.pids.items()
        )

    @property
    def server(self) -> str:
        state = self.state()
        if state is None:
            raise ClusterError(f"no cluster state in {self.state_dir}; start the cluster first")
        return f"https://127.0.0.1:{state.ports['apiserver']}"

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self, timeout: float = 180.0, log: Callable[[str], None] = print) -> None:
        """Starts every component and waits until nodes are Ready and pods can be created.

        Idempotent: a cluster that is already running in this state directory is left alone.
        """
        if self.running():
            log(f"cluster already running: kubeconfig {self.kubeconfig}")
            return
        self.stop()
        binaries = ensure_binaries()
        started = time.monotonic()
        names = ["etcd", "etcd_peer", "apiserver", "kcm", "scheduler", "kwok"]
        if self.kueue:
            names += ["kueue_webhook", "kueue_health"]
        if self.real_node:
            self._prepare_host(log)
            self._claim_host()
            names += ["kubelet", "kubelet_healthz", "proxy_metrics", "proxy_healthz"]
        ports = {name: processes.free_port() for name in names}
        pki = write_pki(
            self.state_dir / "pki",
            SERVICE_IP,
            extra_hosts=(self._host_address,) if self.real_node else (),
            nodes=(realnode.NODE_NAME,) if self.real_node else (),
        )
        self._write_kubeconfig(pki, ports["apiserver"])
        if self.real_node:
            self._write_real_node_configs(pki, ports)
        state = ClusterState(ports=ports, pids={}, executables={}, real_node=self.real_node)
        try:
            for component in self.components:
                if component == "kueue":
                    self._install_kueue(pki, ports)
                argv = self._argv(component, binaries, pki, ports)
                env = {"PATH": SYSTEM_PATH} if component in REAL_NODE_COMPONENTS else None
                state.pids[component] = processes.spawn(argv, self.log_path(component), env=env)
                state.executables[component] = argv[0]
                self._state_file.write_text(state.model_dump_json(indent=2))
                if component == "etcd":
                    self._wait(f"http://127.0.0.1:{ports['etcd']}/health", "etcd", timeout, state)
                elif component == "kube-apiserver":
                    self._wait(f"{self.server}/readyz", component, timeout, state)
                elif component == "registry":
                    self._wait(f"http://{realnode.REGISTRY_ADDRESS}/v2/", component, timeout, state)
                elif component == "containerd":
                    self._wait_for_containerd(timeout, state)
                elif component == "kueue":
                    self._wait(f"http://127.0.0.1:{ports['kueue_health']}/readyz", component, timeout, state)
            self._create_nodes()
            self._wait_until_usable(timeout, state)
            if self.real_node:
                self._start_cluster_dns(binaries, timeout)
        except BaseException:
            self.stop()
            raise
        log(
            f"cluster up in {time.monotonic() - started:.1f}s: API {self.server}, "
            f"kubeconfig {self.kubeconfig}"
        )

    def stop(self) -> None:
        """Stops every component this state directory knows of; safe to call at any time."""
        state = self.state()
        if state is None:
            return
        for component in reversed(COMPONENTS):
            if component == "containerd" and state.real_node:
                realnode.stop_containers(self.real_node_paths)
            pid = state.pids.get(component)
            if pid is not None and processes.alive(pid, state.executables.get(component)):
                processes.terminate(pid)
        if state.real_node:
            paths = self.real_node_paths
            subprocess.run(
                [str(ensure_binaries().kube_proxy), "--cleanup"], capture_output=True, env={"PATH": SYSTEM_PATH}
            )
            realnode.unmount_under(paths.state, paths.images_root)
            realnode.release_host(self.state_dir)
        self._state_file.unlink(missing_ok=True)

    # -- the real node -------------------------------------------------------------------------
    def load_image(self, image: images.Recipe) -> None:
        """Makes a locally built image available to the real node's pods."""
        if not self.real_node:
            raise ClusterError("images can only be loaded into a cluster started with a real node")
        images.load_into_node(self.real_node_paths, image)

    def _prepare_host(self, log: Callable[[str], None]) -> None:
        host.require_root()
        host.ensure_packages(self.log_path("apt-get"))
        host.ensure_docker(self.log_path("dockerd"))
        host.enable_forwarding()
        self._host_address = host.host_address()
        log(f"real node: host address {self._host_address}; building its images if needed")

    def _claim_host(self) -> None:
        """Refuses a second real node on this host while another cluster's runs; clears what one
        that was killed without its stop left behind (realnode.clear_leftovers)."""
        owner = realnode.host_owner()
        if owner is not None and owner != self.state_dir and LocalCluster(owner, real_node=True).running():
            raise ClusterError(
                f"the cluster in {owner} runs a real node on this host, and a host holds one (the CNI "
                f"bridge, its pod range and kube-proxy's rules are host-wide): stop that cluster first "
                f"(`kubetrain dev --state-dir {owner} down`), or start this one without a real node"
            )
        realnode.clear_leftovers(self.real_node_paths)
        realnode.claim_host(self.state_dir)

    def _write_real_node_configs(self, pki: Pki, ports: dict[str, int]) -> None:
        paths = self.real_node_paths
        node_cert, node_key = pki.node_credentials(realnode.NODE_NAME)
        kubeconfig = yaml.safe_load(self.kubeconfig.read_text())
        kubeconfig["users"][0]["user"] = {
            "client-certificate": str(node_cert),
            "client-key": str(node_key),
        }
        realnode.write_configs(
            paths,
            address=self._host_address,
            kubelet_port=ports["kubelet"],
            kubelet_healthz_port=ports["kubelet_healthz"],
            proxy_ports=(ports["proxy_metrics"], ports["proxy_healthz"]),
            ca_file=pki.ca_cert,
            kubelet_kubeconfig=kubeconfig,
            admin_kubeconfig=self.kubeconfig,
        )
        realnode.allow_forwarding_through_bridge()

    def _wait_for_containerd(self, timeout: float, state: ClusterState) -> None:
        """containerd answers, and has the sandbox image before kubelet asks for a pod."""
        paths = self.real_node_paths
        deadline = time.monotonic() + timeout
        while realnode.ctr(paths, "version", check=False).returncode != 0:
            self._check_alive(state)
            if time.monotonic() > deadline:
                raise ClusterError(f"containerd did not answer within {timeout:.0f}s; see {self.log_path('containerd')}")
            time.sleep(0.2)
        images.load_into_node(paths, images.pause_image())

    def _start_cluster_dns(self, binaries: Binaries, timeout: float) -> None:
        coredns = images.coredns_image(binaries.coredns, Versions.pinned().coredns)
        self.load_image(coredns)
        self.apply(realnode.coredns_manifests(coredns.tag))
        self.kubectl(
            "-n", "kube-system", "rollout", "status", "deployment/coredns", f"--timeout={int(timeout)}s"
        )

    # -- Kueue ---------------------------------------------------------------------------------
    def _install_kueue(self, pki: Pki, ports: dict[str, int]) -> None:
        """Kueue's namespace, CRDs and webhook configurations, before its manager starts (it
        watches its CRDs from the start; its webhooks answer once it is up)."""
        release = kueue.release_dir(ensure_kueue())
        ca_bundle = base64.b64encode(pki.ca_cert.read_bytes()).decode()
        cert_dir = kueue.write_certs(self.state_dir / "kueue" / "certs", pki)
        config = kueue.configuration(ports["kueue_webhook"], ports["kueue_health"], cert_dir)
        (self.state_dir / "kueue" / "config.yaml").write_text(yaml.safe_dump(config))
        namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": kueue.NAMESPACE}}
        items = [namespace, *kueue.crd_manifests(release)]
        self.apply(items, server_side=True)
        self.kubectl("wait", "--for=condition=Established", "--timeout=60s",
                     *[f"crd/{crd['metadata']['name']}" for crd in items[1:]])
        hooks = kueue.webhook_manifests(release, ports["kueue_webhook"], ca_bundle)
        self.apply(hooks)

    # -- helpers -------------------------------------------------------------------------------
    def apply(self, items: list[dict[str, Any]], server_side: bool = False, namespace: str | None = None) -> None:
        """`kubectl apply` of these objects as one List (into `namespace` where they name none)."""
        document = json.dumps({"apiVersion": "v1", "kind": "List", "items": items})
        flags = [*(["--server-side"] if server_side else []), *([f"--namespace={namespace}"] if namespace else [])]
        self.kubectl("apply", *flags, "-f", "-", input=document)

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Runs the cluster's own kubectl against this cluster."""
        binaries = ensure_binaries()
        result = subprocess.run(
            [str(binaries.kubectl), f"--kubeconfig={self.kubeconfig}", *args],
            input=input,
            capture_output=True,
            text=True,
        )
        if check and result.returncode != 0:
            raise ClusterError(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
        return result

    def _argv(self, component: str, b: Binaries, pki: Pki, ports: dict[str, int]) -> list[str]:
        data = self.state_dir / "data"
        kc = f"--kubeconfig={self.kubeconfig}"
        if component == "etcd":
            peer = f"http://127.0.0.1:{ports['etcd_peer']}"
            client = f"http://127.0.0.1:{ports['etcd']}"
            return [
                str(b.etcd),
                "--name=default",
                f"--data-dir={data / 'etcd'}",
                f"--listen-client-urls={client}",
                f"--advertise-client-urls={client}",
                f"--listen-peer-urls={peer}",
                f"--initial-advertise-peer-urls={peer}",
                f"--initial-cluster=default={peer}",
                "--unsafe-no-fsync",
                "--log-level=warn",
            ]
        if component == "kube-apiserver":
            if self.real_node:
                # Pods in containers reach the API server through the `kubernetes` Service,
                # whose endpoint is the host's own address; kubelets are reached the same way.
                network = [
                    "--bind-address=0.0.0.0",
                    f"--advertise-address={self._host_address}",
                    f"--kubelet-client-certificate={pki.admin_cert}",
                    f"--kubelet-client-key={pki.admin_key}",
                    "--kubelet-preferred-address-types=InternalIP",
                    # Webhook calls go to a Service's endpoints directly, not through its ClusterIP.
                    "--enable-aggregator-routing=true",
                ]
            else:
                network = [
                    "--bind-address=127.0.0.1",
                    "--advertise-address=127.0.0.1",
                    # The endpoint reconciler refuses loopback addresses; pods reach the API server
                    # through KUBERNETES_SERVICE_HOST (set by the local node), never the Service.
                    "--endpoint-reconciler-type=none",
                ]
            return [
                str(b.kube_apiserver),
                f"--etcd-servers=http://127.0.0.1:{ports['etcd']}",
                f"--cert-dir={data / 'apiserver'}",
                f"--tls-cert-file={pki.serving_cert}",
                f"--tls-private-key-file={pki.serving_key}",
                f"--client-ca-file={pki.ca_cert}",
                f"--secure-port={ports['apiserver']}",
                *network,
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--authorization-mode=Node,RBAC",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={pki.sa_public_key}",
                f"--service-account-signing-key-file={pki.sa_private_key}",
                "--allow-privileged=true",
                "--profiling=false",
                FEATURE_GATES,
                WORKLOAD_API,
                "--v=1",
                *self.apiserver_args,
            ]
        if component == "kube-controller-manager":
            return [
                str(b.kube_controller_manager),
                kc,
                f"--authentication-kubeconfig={self.kubeconfig}",
                f"--authorization-kubeconfig={self.kubeconfig}",
                f"--service-account-private-key-file={pki.sa_private_key}",
                f"--root-ca-file={pki.ca_cert}",
                f"--cluster-signing-cert-file={pki.ca_cert}",
                f"--cluster-signing-key-file={pki.ca_key}",
                "--use-service-account-credentials=true",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                f"--secure-port={ports['kcm']}",
                FEATURE_GATES,
                "--v=1",
            ]
        if component == "kube-scheduler":
            return [
                str(b.kube_scheduler),
                kc,
                f"--authentication-kubeconfig={self.kubeconfig}",
                f"--authorization-kubeconfig={self.kubeconfig}",
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                f"--secure-port={ports['scheduler']}",
                FEATURE_GATES,
                "--v=1",
            ]
        if component == "kwok":
            stages = self.state_dir / "kwok-stages.yaml"
            config = resources.files("kubetrain.devcluster").joinpath("kwok-stages.yaml").read_text()
            if self.kwok_parallelism is not None:
                # A configuration from a file gets none of KWOK's defaults: the other
                # parallelisms are KWOK's defaults, spelled out.
                config += (
                    "---\napiVersion: config.kwok.x-k8s.io/v1alpha1\nkind: KwokConfiguration\noptions:\n"
                    f"  podPlayStageParallelism: {self.kwok_parallelism}\n  nodePlayStageParallelism: 4\n"
                    "  nodeLeaseParallelism: 4\n  podsOnNodeSyncParallelism: 1\n"
                )
            stages.write_text(config)
            return [
                str(b.kwok),
                kc,
                f"--config={stages}",
                "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
                "--node-lease-duration-seconds=40",
                f"--cidr={POD_CIDR}",
                f"--server-address=127.0.0.1:{ports['kwok']}",
            ]
        if component == "localnode":
            return [
                sys.executable,
                "-m",
                "kubetrain.devcluster.localnode",
                kc,
                f"--node-name={LOCAL_NODE_NAME}",
                f"--state-dir={self.state_dir / 'localnode'}",
                f"--api-port={ports['apiserver']}",
                f"--ca-file={pki.ca_cert}",
            ]
        paths = self.real_node_paths
        if component == "registry":
            return realnode.registry_argv(b.registry, paths)
        if component == "containerd":
            return realnode.containerd_argv(paths)
        if component == "kubelet":
            return realnode.kubelet_argv(b.kubelet, paths, self._host_address)
        if component == "kube-proxy":
            return realnode.kube_proxy_argv(b.kube_proxy, paths)
        if component == "kueue":
            return kueue.argv(ensure_kueue(), self.state_dir / "kueue" / "config.yaml", self.kubeconfig)
        raise ValueError(f"unknown component {component}")

    def _write_kubeconfig(self, pki: Pki, apiserver_port: int) -> None:
        def b64(path: Path) -> str:
            return base64.b64encode(path.read_bytes()).decode()

        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "kubetrain-dev",
                    "cluster": {
                        "server": f"https://127.0.0.1:{apiserver_port}",
                        "certificate-authority-data": b64(pki.ca_cert),
                    },
                }
            ],
            "users": [
                {
                    "name": "kubetrain-admin",
                    "user": {
                        "client-certificate-data": b64(pki.admin_cert),
                        "client-key-data": b64(pki.admin_key),
                    },
                }
            ],
            "contexts": [
                {
                    "name": "kubetrain-dev",
                    "context": {"cluster": "kubetrain-dev", "user": "kubetrain-admin"},
                }
            ],
            "current-context": "kubetrain-dev",
        }
        self.kubeconfig.parent.mkdir(parents=True, exist_ok=True)
        self.kubeconfig.write_text(yaml.safe_dump(config))
        self.kubeconfig.chmod(0o600)

    def _ssl_context(self) -> ssl.SSLContext:
        pki = self.pki
        ctx = ssl.create_default_context(cafile=str(pki.ca_cert))
        ctx.load_cert_chain(str(pki.admin_cert), str(pki.admin_key))
        return ctx

    def _check_alive(self, state: ClusterState) -> None:
        for name, pid in state.pids.items():
            if not processes.alive(pid):
                tail = self.log_path(name).read_text(errors="replace")[-3000:]
                raise ClusterError(f"{name} exited; last lines of {self.log_path(name)}:\n{tail}")

    def _wait(self, url: str, component: str, timeout: float, state: ClusterState) -> None:
        ctx = self._ssl_context() if url.startswith("https") else None
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            self._check_alive(state)
            try:
                with urllib.request.urlopen(url, context=ctx, timeout=5) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
                last = str(exc)
            time.sleep(0.2)
        raise ClusterError(
            f"{component} not healthy at {url} after {timeout:.0f}s ({last}); "
            f"see {self.log_path(component)}"
        )

    def _create_nodes(self) -> None:
        items = [node for pool in self.pools for node in node_manifests(pool)]
        if items:
            self.apply(items)

    def _wait_until_usable(self, timeout: float, state: ClusterState) -> None:
        """Pods can be created once the default ServiceAccount exists, and placed once every
        node is Ready."""
        deadline = time.monotonic() + timeout
        want_nodes = sum(len(p.regions) for p in self.pools) + int(self.local_node) + int(self.real_node)
        while time.monotonic() < deadline:
            self._check_alive(state)
            sa = self.kubectl("get", "serviceaccount", "default", "-n", "default", check=False)
            nodes = self.kubectl("get", "nodes", "-o", "json", check=False)
            if sa.returncode == 0 and nodes.returncode == 0:
                ready = [n for n in json.loads(nodes.stdout)["items"] if _node_ready(n)]
                if len(ready) >= want_nodes:
                    return
            time.sleep(0.3)
        raise ClusterError(
            f"cluster not usable after {timeout:.0f}s (default ServiceAccount or Ready nodes "
            f"missing); see logs in {self.state_dir / 'logs'}"
        )


def _node_ready(node: dict[str, Any]) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in node.get("status", {}).get("conditions", [])
    )
