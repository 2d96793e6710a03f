"""Control-plane benchmark: kubetrain against its Go peers, side by side on one local cluster (real
apiserver/scheduler, KWOK nodes), same workload, same run: PyTorch jobs against Kubeflow
training-operator v1 (PyTorchJob), Ray jobs against KubeRay (RayJob), both peers built from the Go
module proxy and cached by version.

For each N it submits N jobs of `--workers` pods to each operator in turn and measures: seconds
until every pod exists, seconds until every job is Running, API requests the operator made per job
(from the API server's audit log, by user agent), operator CPU seconds and peak RSS.

    .venv/bin/python bench/control_plane.py --jobs 100 500 1000
"""

from __future__ import annotations

import argparse
import base64
import concurrent.futures
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import kubernetes

from kubetrain.devcluster.binaries import cache_dir, ensure_binaries
from kubetrain.devcluster.cluster import LocalCluster
from kubetrain.devcluster.nodepools import DevNodePool
from kubetrain.devcluster.processes import free_port

TRAINING_OPERATOR = "github.com/kubeflow/training-operator"
TRAINING_OPERATOR_VERSION = "v1.9.3"
KUBERAY = "github.com/ray-project/kuberay/ray-operator"
KUBERAY_VERSION = "v1.5.0"
PODS_PER_NODE = 110
WEBHOOK_CERT_DIR = Path("/tmp/k8s-webhook-server/serving-certs")  # hard-coded in training-operator
ROOT = Path(__file__).resolve().parent.parent
AUDIT_POLICY = """apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived, ResponseStarted]
rules:
- level: Metadata
"""


@dataclass
class Result:
    system: str
    jobs: int
    pods_seconds: float
    running_seconds: float
    requests_per_job: float
    cpu_seconds: float
    peak_rss_mib: float


def go_binary(module: str, package: str, version: str, name: str) -> tuple[Path, Path]:
    """Builds a Go operator once (cached by version) with `go install` from the module proxy and
    returns the binary with the module's source dir (for its CRDs)."""
    out = cache_dir() / "bin" / f"{name}-{version}"
    binary = out / package.rsplit("/", 1)[-1]
    env = {**os.environ, "GOTOOLCHAIN": "local", "CGO_ENABLED": "0", "GOFLAGS": "-buildvcs=false", "GOBIN": str(out)}
    if not binary.exists():
        print(f"building {name} {version} (once)", file=sys.stderr)
        subprocess.run(
            ["go", "install", "-trimpath", "-ldflags", "-s -w", f"{package}@{version}"],
            check=True, env=env, cwd=tempfile.gettempdir(),
        )
    mod = subprocess.run(
        ["go", "mod", "download", "-json", f"{module}@{version}"],
        check=True, capture_output=True, text=True, env=env, cwd=tempfile.gettempdir(),
    )
    return binary, Path(json.loads(mod.stdout)["Dir"])


def proc_usage(pid: int) -> tuple[float, float]:
    """CPU seconds (user+system) and peak RSS in MiB of a live process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    hwm = next(line for line in Path(f"/proc/{pid}/status").read_text().splitlines() if line.startswith("VmHWM"))
    return cpu, int(hwm.split()[1]) / 1024


def count_requests(audit_log: Path, offset: int, agent_prefixes: tuple[str, ...]) -> int:
    count = 0
    with audit_log.open("rb") as log:
        log.seek(offset)
        for line in log:
            event = json.loads(line)
            if event.get("userAgent", "").startswith(agent_prefixes):
                count += 1
    return count


def kubetrain_job(name: str, workers: int) -> dict[str, Any]:
    return {
        "apiVersion": "kubetrain.io/v1alpha1",
        "kind": "TrainingJob",
        "metadata": {"name": name},
        "spec": {
            "workers": workers,
            "nodePool": "cpu",
            "image": "bench:latest",
            "command": ["sleep", "infinity"],
            "resources": {"cpu": "100m", "memory": "64Mi"},
            "dataset": {"uri": "file:///data/bench.csv"},
            "output": {"uri": "file:///out/bench"},
        },
    }


def kubetrain_ray_job(name: str, pods: int) -> dict[str, Any]:
    """A Ray TrainingJob of `pods` pods: its head and `pods - 1` Ray workers."""
    job = kubetrain_job(name, pods - 1)
    job["spec"]["runtime"] = "ray"
    return job


def bench_pod_spec(container: str) -> dict[str, Any]:
    return {
        "nodeSelector": {"kubetrain.io/node-pool": "cpu"},
        "containers": [
            {
                "name": container,
                "image": "bench:latest",
                "command": ["sleep", "infinity"],
                "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}},
            }
        ],
    }


def pytorch_job(name: str, workers: int) -> dict[str, Any]:
    def replica(count: int) -> dict[str, Any]:
        return {
            "replicas": count,
            "restartPolicy": "OnFailure",
            "template": {"spec": bench_pod_spec("pytorch")},
        }

    return {
        "apiVersion": "kubeflow.org/v1",
        "kind": "PyTorchJob",
        "metadata": {"name": name},
        "spec": {"pytorchReplicaSpecs": {"Master": replica(1), "Worker": replica(workers - 1)}},
    }


def ray_job(name: str, pods: int) -> dict[str, Any]:
    """A RayJob of a head and `pods - 1` workers. SidecarMode submits the entrypoint from a
    container KubeRay adds to the head pod, so no submitter pod (K8sJobMode's Kubernetes Job)
    exists beside the cluster's own pods, as with kubetrain, whose head runs the driver."""
    workers = pods - 1
    return {
        "apiVersion": "ray.io/v1",
        "kind": "RayJob",
        "metadata": {"name": name},
        "spec": {
            "entrypoint": "python -c pass",
            "submissionMode": "SidecarMode",
            "rayClusterSpec": {
                "headGroupSpec": {"rayStartParams": {}, "template": {"spec": bench_pod_spec("ray-head")}},
                "workerGroupSpecs": [
                    {
                        "groupName": "workers",
                        "replicas": workers,
                        "minReplicas": workers,
                        "maxReplicas": workers,
                        "rayStartParams": {},
                        "template": {"spec": bench_pod_spec("ray-worker")},
                    }
                ],
            },
        },
    }


class System(Protocol):
    """One operator under test: how to start it and what its jobs look like."""

    name: str
    agents: tuple[str, ...]
    group: str
    version: str
    plural: str

    def start(self, cluster: LocalCluster, namespace: str, log: Path) -> subprocess.Popen[bytes]: ...

    def manifest(self, name: str, workers: int) -> dict[str, Any]: ...

    def running(self, job: dict[str, Any]) -> bool: ...


class Kubetrain:
    agents = ("kubetrain-operator", "kopf/")
    group, version, plural = "kubetrain.io", "v1alpha1", "trainingjobs"

    def __init__(self, runtime: str = "pytorch", gang_scheduling: str = "Auto") -> None:
        self.runtime = runtime
        self.gang_scheduling = gang_scheduling
        self.name = "kubetrain" if runtime == "pytorch" else f"kubetrain-{runtime}"

    def start(self, cluster: LocalCluster, namespace: str, log: Path) -> subprocess.Popen[bytes]:
        argv = [sys.executable, "-m", "kubetrain.cli", "operator", "run", f"--kubeconfig={cluster.kubeconfig}",
                f"--namespace={namespace}", f"--liveness-port={free_port()}", f"--metrics-port={free_port()}",
                "--log-level=WARNING"]
        return subprocess.Popen(argv, stdout=log.open("wb"), stderr=subprocess.STDOUT)

    def manifest(self, name: str, workers: int) -> dict[str, Any]:
        job = kubetrain_job(name, workers) if self.runtime == "pytorch" else kubetrain_ray_job(name, workers)
        job["spec"]["runPolicy"] = {"gangScheduling": self.gang_scheduling}
        return job

    def running(self, job: dict[str, Any]) -> bool:
        return (job.get("status") or {}).get("phase") == "Running"


class GoPeer:
    """A peer operator's binary, run on the host against the cluster's kubeconfig; `client_limits`:
    its (QPS, burst, concurrency) flags instead of its defaults."""

    def __init__(self, binary: Path, client_limits: tuple[int, int, int] | None = None) -> None:
        self.binary = binary
        self.client_limits = client_limits

    def _popen(self, argv: list[str], cluster: LocalCluster, log: Path) -> subprocess.Popen[bytes]:
        return subprocess.Popen([str(self.binary), *argv], stdout=log.open("wb"), stderr=subprocess.STDOUT,
                                env={**os.environ, "KUBECONFIG": str(cluster.kubeconfig)})


class TrainingOperator(GoPeer):
    """Client limits: --kube-api-qps, --kube-api-burst, --controller-threads (defaults 20, 30, 1)."""

    name, agents = "training-operator", ("training-operator",)
    group, version, plural = "kubeflow.org", "v1", "pytorchjobs"

    def start(self, cluster: LocalCluster, namespace: str, log: Path) -> subprocess.Popen[bytes]:
        argv = [
            "--enable-scheme=pytorchjob",
            f"--namespace={namespace}",
            f"--metrics-bind-address=127.0.0.1:{free_port()}",
            f"--health-probe-bind-address=127.0.0.1:{free_port()}",
            f"--webhook-server-port={free_port()}",
        ]
        if self.client_limits is not None:
            qps, burst, threads = self.client_limits
            argv += [f"--kube-api-qps={qps}", f"--kube-api-burst={burst}", f"--controller-threads={threads}"]
        proc = self._popen(argv, cluster, log)
        self._mount_certs(cluster)
        return proc

    @staticmethod
    def _mount_certs(cluster: LocalCluster) -> None:
        """Plays the kubelet's secret volume: the operator's controllers start only once the
        serving certificate its cert rotator wrote into the Secret is on disk."""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            secret = json.loads(cluster.kubectl("get", "secret", "training-operator-webhook-cert",
                                                "-n", "kubeflow", "-o", "json").stdout)
            data = secret.get("data") or {}
            if "tls.crt" in data and "tls.key" in data:
                WEBHOOK_CERT_DIR.mkdir(parents=True, exist_ok=True)
                for key in ("tls.crt", "tls.key"):
                    (WEBHOOK_CERT_DIR / key).write_bytes(base64.b64decode(data[key]))
                return
            time.sleep(0.5)
        raise RuntimeError("training-operator never wrote its webhook certificate")

    def manifest(self, name: str, workers: int) -> dict[str, Any]:
        return pytorch_job(name, workers)

    def running(self, job: dict[str, Any]) -> bool:
        return any(
            c["type"] == "Running" and c["status"] == "True" for c in (job.get("status") or {}).get("conditions", [])
        )


class KubeRay(GoPeer):
    """Client limits: --qps, --burst, --reconcile-concurrency (defaults 100, 200, 1)."""

    name, agents = "kuberay", ("kuberay-operator",)
    group, version, plural = "ray.io", "v1", "rayjobs"

    def start(self, cluster: LocalCluster, namespace: str, log: Path) -> subprocess.Popen[bytes]:
        # Leader election off, as kubetrain and training-operator run here (their default).
        argv = [
            f"--watch-namespace={namespace}",
            "--enable-leader-election=false",
            f"--metrics-addr=127.0.0.1:{free_port()}",
            f"--health-probe-bind-address=127.0.0.1:{free_port()}",
            "--zap-log-level=error",
        ]
        if self.client_limits is not None:
            qps, burst, concurrency = self.client_limits
            argv += [f"--qps={qps}", f"--burst={burst}", f"--reconcile-concurrency={concurrency}"]
        return self._popen(argv, cluster, log)

    def manifest(self, name: str, workers: int) -> dict[str, Any]:
        return ray_job(name, workers)

    def running(self, job: dict[str, Any]) -> bool:
        """SidecarMode moves a RayJob to Running once its RayCluster is Ready (every pod Running
        and ready): the moment kubetrain's Ray job turns Running too."""
        return (job.get("status") or {}).get("jobDeploymentStatus") == "Running"


#: (kubetrain system, its peer): the ratio tables.
PAIRS = (("kubetrain", "training-operator"), ("kubetrain-ray", "kuberay"))


def measure(system: System, cluster: LocalCluster, api: kubernetes.client.ApiClient, jobs: int, workers: int,
            audit_log: Path, work: Path, timeout: float) -> Result:
    core = kubernetes.client.CoreV1Api(api)
    custom = kubernetes.client.CustomObjectsApi(api)
    namespace = f"bench-{system.name}-{jobs}"
    core.create_namespace({"metadata": {"name": namespace}})
    proc = system.start(cluster, namespace, work / f"{namespace}.log")
    time.sleep(3)  # let the operator list and start watching before the clock starts
    offset = audit_log.stat().st_size
    started = time.monotonic()

    def submit(index: int) -> None:
        body = system.manifest(f"job-{index:05d}", workers)
        custom.create_namespaced_custom_object(system.group, system.version, namespace, system.plural, body)

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(submit, range(jobs)))
    pods_at = running_at = None
    while time.monotonic() - started < timeout and running_at is None:
        if proc.poll() is not None:
            log = work / f"{namespace}.log"
            raise RuntimeError(f"{system.name} exited ({proc.returncode}) before its jobs ran: {log}")
        if pods_at is None:
            pods = core.list_namespaced_pod(namespace, resource_version="0").items
            if len(pods) >= jobs * workers:
                pods_at = time.monotonic() - started
        items = custom.list_namespaced_custom_object(system.group, system.version, namespace, system.plural)["items"]
        if pods_at is not None and sum(system.running(j) for j in items) >= jobs:
            running_at = time.monotonic() - started
        time.sleep(0.5)
    cpu, rss = proc_usage(proc.pid)
    proc.terminate()
    proc.wait(timeout=30)
    requests = count_requests(audit_log, offset, system.agents)
    drop_finalizers(custom, system, namespace)
    core.delete_namespace(namespace)
    wait_gone(core, namespace, timeout)
    return Result(system.name, jobs, pods_at or math.inf, running_at or math.inf, requests / jobs, cpu, rss)


def drop_finalizers(custom: kubernetes.client.CustomObjectsApi, system: System, namespace: str) -> None:
    """The operator is stopped, so nothing else would remove its finalizers from its jobs
    (KubeRay's ray.io/rayjob-finalizer): the namespace would stay Terminating for ever."""
    items = custom.list_namespaced_custom_object(system.group, system.version, namespace, system.plural)["items"]
    for item in items:
        if item["metadata"].get("finalizers"):
            custom.patch_namespaced_custom_object(system.group, system.version, namespace, system.plural,
                                                  item["metadata"]["name"], {"metadata": {"finalizers": None}})


def wait_gone(core: kubernetes.client.CoreV1Api, namespace: str, timeout: float) -> None:
    """Until the namespace and its pods are gone. The nodes are sized for one system's pods: the
    next system's gangs would otherwise meet nodes still full of these ("Too many pods"), bind
    in part, back off and wait for the scheduler's periodic retry, minutes later."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            core.read_namespace(namespace)
        except kubernetes.client.exceptions.ApiException as exc:
            if exc.status == 404:
                return
            raise
        time.sleep(1)
    raise TimeoutError(f"namespace {namespace} still exists {timeout:.0f}s after its deletion")


def print_table(results: list[Result]) -> None:
    header = (f"{'system':<18} {'jobs':>5} {'pods exist s':>12} {'all Running s':>13} {'API req/job':>11} "
              f"{'CPU s':>7} {'peak RSS MiB':>12}")
    print(header)
    print("-" * len(header))
    for r in results:
        print(f"{r.system:<18} {r.jobs:>5} {r.pods_seconds:>12.1f} {r.running_seconds:>13.1f} "
              f"{r.requests_per_job:>11.1f} {r.cpu_seconds:>7.1f} {r.peak_rss_mib:>12.0f}")
    by = {(r.system, r.jobs): r for r in results}
    for ours, peer in PAIRS:
        rows = [(jobs, by[ours, jobs], by[peer, jobs]) for jobs in sorted({r.jobs for r in results})
                if (ours, jobs) in by and (peer, jobs) in by]
        if not rows:
            continue
        print()
        print(f"ratio {ours} / {peer} (lower is better for kubetrain)")
        for jobs, a, b in rows:
            cells = [
                a.pods_seconds / b.pods_seconds,
                a.running_seconds / b.running_seconds,
                a.requests_per_job / b.requests_per_job,
                a.cpu_seconds / b.cpu_seconds,
                a.peak_rss_mib / b.peak_rss_mib,
            ]
            print(f"{'':<18} {jobs:>5} " + " ".join(f"{c:>{w}.2f}" for c, w in zip(cells, (12, 13, 11, 7, 12))))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, nargs="+", default=[100, 500, 1000])
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--timeout", type=float, default=900.0, help="per system and N")
    parser.add_argument("--skip-training-operator", action="store_true")
    parser.add_argument("--training-operator-limits", type=int, nargs=3, metavar=("QPS", "BURST", "THREADS"),
                        help="training-operator's client QPS, burst and controller threads (default 20 30 1)")
    parser.add_argument("--skip-ray", action="store_true", help="no Ray jobs: neither kubetrain's nor KubeRay's")
    parser.add_argument("--skip-kuberay", action="store_true", help="kubetrain's Ray jobs without KubeRay's")
    parser.add_argument("--kuberay-limits", type=int, nargs=3, metavar=("QPS", "BURST", "CONCURRENCY"),
                        help="KubeRay's client QPS, burst and reconcile concurrency (default 100 200 1)")
    parser.add_argument("--kubetrain-gang-scheduling", choices=("Auto", "Off"), default="Auto",
                        help="kubetrain's runPolicy.gangScheduling (Off: pods bound one by one, as the peers' are)")
    args = parser.parse_args()
    ensure_binaries()
    systems: list[System] = [Kubetrain(gang_scheduling=args.kubetrain_gang_scheduling)]
    crds = [ROOT / "crds"]
    if not args.skip_training_operator:
        binary, module = go_binary(TRAINING_OPERATOR, f"{TRAINING_OPERATOR}/cmd/training-operator.v1",
                                   TRAINING_OPERATOR_VERSION, "training-operator")
        limits = tuple(args.training_operator_limits) if args.training_operator_limits else None
        systems.append(TrainingOperator(binary, limits))
        crds.append(module / "manifests/base/crds/kubeflow.org_pytorchjobs.yaml")
    if not args.skip_ray:
        systems.append(Kubetrain("ray", args.kubetrain_gang_scheduling))
    if not (args.skip_ray or args.skip_kuberay):
        binary, module = go_binary(KUBERAY, KUBERAY, KUBERAY_VERSION, "kuberay")
        ray_limits = tuple(args.kuberay_limits) if args.kuberay_limits else None
        systems.append(KubeRay(binary, ray_limits))
        # All three: KubeRay's manager exits when one of its controllers' kinds is not served.
        crds += [module / f"config/crd/bases/ray.io_{kind}.yaml" for kind in ("rayclusters", "rayjobs", "rayservices")]
    work = Path(tempfile.mkdtemp(prefix="kubetrain-bench-"))
    (work / "audit-policy.yaml").write_text(AUDIT_POLICY)
    audit_log = work / "audit.log"
    nodes = math.ceil(max(args.jobs) * args.workers / PODS_PER_NODE) + 1
    pool = DevNodePool(name="cpu", regions=["eu-west-1"] * nodes, cpu="1000", memory="4Ti")
    cluster = LocalCluster(work / "cluster", pools=[pool], local_node=False, apiserver_args=[
        f"--audit-policy-file={work / 'audit-policy.yaml'}", f"--audit-log-path={audit_log}",
        "--audit-log-format=json", "--audit-log-mode=batch", "--audit-log-batch-max-wait=1s",
        # Never rotated: the log is counted from byte offsets (0 would mean lumberjack's 100 MB,
        # which N = 1000 outgrows).
        "--audit-log-maxsize=1000000",
        "--max-requests-inflight=800", "--max-mutating-requests-inflight=400",
    ])
    results: list[Result] = []
    try:
        cluster.start()
        for crd in crds:
            cluster.kubectl("apply", "--server-side", "-f", str(crd))
        if not args.skip_training_operator:
            cluster.kubectl("create", "namespace", "kubeflow")
            cluster.kubectl("create", "secret", "generic", "training-operator-webhook-cert", "-n", "kubeflow")
            # Its cert rotator waits for this object before the controllers start; with no webhooks
            # in it, PyTorchJobs are not validated, like TrainingJobs in this benchmark.
            cluster.kubectl("apply", "-f", "-", input=json.dumps({
                "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
                "metadata": {"name": "validator.training-operator.kubeflow.org"}, "webhooks": []}))
        cluster.kubectl("wait", "--for=condition=Established", "--all", "crd", "--timeout=60s")
        api = kubernetes.config.new_client_from_config(config_file=str(cluster.kubeconfig))
        api.user_agent = "kubetrain-bench"
        for jobs in args.jobs:
            for system in systems:
                print(f"# {system.name}: {jobs} jobs x {args.workers} workers", file=sys.stderr, flush=True)
                results.append(measure(system, cluster, api, jobs, args.workers, audit_log, work, args.timeout))
    finally:
        cluster.stop()
    print_table(results)
    print(f"\n(logs and audit log in {work})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
