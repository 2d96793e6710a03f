"""Fixtures for the real-container tests: a cluster of its own with a real node (containerd,
kubelet, kube-proxy, CoreDNS), the project's images built with the Docker Engine and loaded into
the node, and the Helm chart installed with the kind values file, as a user does on kind.

The cluster is package-scoped: it lives while these tests run and stops before the rest of the
suite, since only one real node can run on a host at a time.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import yaml

from kubetrain.devcluster import images
from kubetrain.devcluster.cluster import LocalCluster
from tests.helm import CHART, Helm
from tests.helpers import admin_client, fresh_namespace, wait_for

REPO = Path(__file__).resolve().parents[2]
KIND_VALUES = CHART / "values-kind.yaml"
FIRST_JOB = REPO / "examples" / "first-job.yaml"
RELEASE_NAMESPACE = "kubetrain-system"
# The claim the tests' jobs write their output to (examples/first-job.yaml's), bound by
# provide_output_volume to a host directory the test reads back.
OUTPUT_CLAIM: dict[str, Any] = {
    "apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "kubetrain-output"},
    "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
}


def generate_tabular(path: str, rows: int) -> list[str]:
    """The command of an init container that makes the tabular data set in the trainer image."""
    return ["python3", "-m", "kubetrain_trainer.datagen", "tabular", "--out", path, "--rows", str(rows), "--seed", "0"]


def provide_output_volume(core: kubernetes.client.CoreV1Api, namespace: str, directory: Path) -> None:
    """What kind's default StorageClass does for the example's claim: a host directory bound to
    it, writable by the trainer's non-root user."""
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o777)
    core.create_persistent_volume({
        "metadata": {"name": f"output-{namespace}"},
        "spec": {
            "capacity": {"storage": "1Gi"},
            "accessModes": ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Delete",
            "hostPath": {"path": str(directory), "type": "Directory"},
            "claimRef": {"namespace": namespace, "name": "kubetrain-output"},
        },
    })


@pytest.fixture(scope="package")
def real_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    cluster = LocalCluster(tmp_path_factory.mktemp("real-cluster"), pools=[], local_node=False, real_node=True)
    try:
        cluster.start(timeout=300)
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="package")
def real_api(real_cluster: LocalCluster) -> Iterator[kubernetes.client.ApiClient]:
    with admin_client(real_cluster.kubeconfig) as client:
        yield client


@pytest.fixture(scope="package")
def project_images(real_cluster: LocalCluster) -> dict[str, str]:
    """The operator image and the CPU trainer image, built (cached by content) and loaded."""
    recipes = {"operator": images.operator_image(REPO), "trainer": images.trainer_cpu_image(REPO)}
    for recipe in recipes.values():
        real_cluster.load_image(recipe)
    return {role: recipe.tag for role, recipe in recipes.items()}


@pytest.fixture(scope="package")
def helm_operator(real_cluster: LocalCluster, project_images: dict[str, str]) -> Iterator[Helm]:
    """`helm install` of the chart with values-kind.yaml: the operator runs as a Pod."""
    helm = Helm(real_cluster.kubeconfig)
    helm.run("install", "kubetrain", str(CHART), f"--namespace={RELEASE_NAMESPACE}", "--create-namespace",
             f"--values={KIND_VALUES}", "--wait", "--timeout=5m")
    try:
        wait_for_admission(real_cluster, timeout=300)
        yield helm
    finally:
        helm.run("uninstall", "kubetrain", f"--namespace={RELEASE_NAMESPACE}", "--wait", check=False)


def first_job_objects() -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(FIRST_JOB.read_text()) if doc]


def wait_for_admission(cluster: LocalCluster, timeout: float) -> None:
    """Until the operator Pod admits a job (a server-side dry run through its webhooks), as a user
    waits for a fresh install before the first apply. Ready is not enough on a node that has just
    loaded GBs of images: the API server can stall for seconds, the operator then loses its Lease
    and restarts (docs/install.md, High availability), and the tests would meet the webhook while it is down."""
    job = next(o for o in first_job_objects() if o["kind"] == "TrainingJob")
    document = json.dumps(job)
    try:
        wait_for(lambda: cluster.kubectl("apply", "--dry-run=server", "--namespace=default", "-f", "-",
                                         input=document, check=False).returncode == 0,
                 timeout=timeout, what="the operator to admit a job")
    except AssertionError as timed_out:
        raise AssertionError(f"{timed_out}\n{operator_pod_report(cluster)}") from None


@pytest.fixture
def real_namespace(real_api: kubernetes.client.ApiClient, request: pytest.FixtureRequest) -> Iterator[str]:
    with fresh_namespace(real_api, request.node.name, prefix="c") as name:
        yield name


@pytest.fixture
def output_dir(real_api: kubernetes.client.ApiClient, real_namespace: str, tmp_path: Path) -> Path:
    core = kubernetes.client.CoreV1Api(real_api)
    provide_output_volume(core, real_namespace, tmp_path / "output")
    yield tmp_path / "output"
    core.delete_persistent_volume(f"output-{real_namespace}")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A failed test that used the operator Pod reports that Pod's state, events and logs (the
    previous container's too, after a restart): what a CI log needs to tell an operator that hung or
    restarted from a test's own fault."""
    report = yield
    cluster = getattr(item, "funcargs", {}).get("real_cluster")
    if report.failed and "helm_operator" in getattr(item, "fixturenames", ()) and isinstance(cluster, LocalCluster):
        report.sections.append(("operator pod", operator_pod_report(cluster)))
    return report


def operator_pod_report(cluster: LocalCluster) -> str:
    """Compact facts first (a CI log may keep only the start of a section): the container's
    restarts and last end, who holds the Lease, and whether the Pod's ports answer from the node;
    then the events, the node's own log lines about the Pod, and the operator's logs."""
    namespace = f"--namespace={RELEASE_NAMESPACE}"
    statuses = ("{range .items[*]}{.metadata.name} {.status.podIP} restarts={.status.containerStatuses[0].restartCount}"
                " state={.status.containerStatuses[0].state} last={.status.containerStatuses[0].lastState}{'\\n'}{end}")
    lease = "{.spec.holderIdentity} renewed {.spec.renewTime} transitions={.spec.leaseTransitions}"
    parts = []
    for args in (
        ("get", "pods", "-o", f"jsonpath={statuses}", namespace),
        ("get", "lease", "kubetrain", "-o", f"jsonpath={lease}", namespace),
        ("get", "endpointslices", "-o", "wide", namespace),
    ):
        result = cluster.kubectl(*args, check=False)
        parts.append(f"$ kubectl {' '.join(args)}\n{result.stdout}{result.stderr}")
    pods = cluster.kubectl("get", "pods", "-o", "jsonpath={.items[*].metadata.name} {.items[*].status.podIP}",
                           namespace, check=False).stdout.split()
    names, addresses = pods[: len(pods) // 2], pods[len(pods) // 2:]
    parts += [f"from the node, {address}: " + ", ".join(f"{port} {answers(address, port)}" for port in (8080, 9443))
              for address in addresses]
    for args in (
        ("get", "events", "--sort-by=.lastTimestamp", namespace),
        ("logs", "deployment/kubetrain", "--previous", "--tail=60", namespace),
        ("logs", "deployment/kubetrain", "--tail=60", namespace),
    ):
        result = cluster.kubectl(*args, check=False)
        parts.append(f"$ kubectl {' '.join(args)}\n{result.stdout}{result.stderr}")
    for component in ("kubelet", "containerd"):
        path = cluster.log_path(component)
        lines = [line for line in path.read_text(errors="replace").splitlines()
                 if any(name in line for name in names) and "Volume" not in line]
        parts.append(f"{component} log, lines naming {' '.join(names)} but no volume (last 15):\n"
                     + "\n".join(lines[-15:]))
    return "\n".join(parts)


def answers(address: str, port: int) -> str:
    """Whether a TCP connection to the Pod's port opens (what the API server's webhook call needs)."""
    try:
        with socket.create_connection((address, port), timeout=2):
            return "accepts"
    except OSError as exc:
        return f"fails: {exc}"
