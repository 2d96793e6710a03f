"""The `kubetrain` job verbs and the Python client against the real control plane: each verb run
as a user runs it (a process, the kubeconfig, a namespace), asserting its output and exit code.
Jobs on KWOK pools are ended on demand; one job really trains on the local node, for `watch`
and `logs -f` on a running job, then `curve` and `logs` on what it archived once its pods are gone."""

from __future__ import annotations

import copy
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import yaml

from kubetrain.client import Client
from kubetrain.devcluster.cluster import LocalCluster
from tests.builders import example
from tests.helpers import wait_for
from tests.jobs import Jobs
from tests.operator_process import OperatorProcess

pytestmark = pytest.mark.cluster


@pytest.fixture
def jobs(api: kubernetes.client.ApiClient, namespace: str, operator: OperatorProcess) -> Jobs:
    return Jobs(api, namespace)


def kubetrain(
    cluster: LocalCluster, namespace: str, *args: str, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kubetrain.cli", *args, "--kubeconfig", str(cluster.kubeconfig), "-n", namespace],
        capture_output=True, text=True, timeout=timeout,
    )


def start(cluster: LocalCluster, namespace: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "kubetrain.cli", *args, "--kubeconfig", str(cluster.kubeconfig), "-n", namespace],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def first_line_with(process: subprocess.Popen[str], text: str) -> str:
    """Reads the process's output up to the first line holding `text` (the test's timeout bounds it)."""
    assert process.stdout is not None
    while text not in (line := process.stdout.readline()):
        assert line, f"output ended before a line with {text!r}"
    return line


def manifest_file(tmp_path: Path, manifest: dict[str, Any]) -> str:
    path = tmp_path / f"{manifest['metadata']['name']}.yaml"
    path.write_text(yaml.safe_dump(manifest))
    return str(path)


def gpu_job(name: str, **run_policy: Any) -> dict[str, Any]:
    """The KWOK GPU example (2 workers x 1 GPU on a100-eu), bounded to an hour."""
    manifest = copy.deepcopy(example("pytorch-ddp.yaml"))
    manifest["metadata"]["name"] = name
    manifest["spec"]["runPolicy"] = {"backoffLimit": 0, "activeDeadlineSeconds": 3600, **run_policy}
    return manifest


def test_submit_validates_locally_and_shows_what_will_run(
    cluster: LocalCluster, jobs: Jobs, namespace: str, tmp_path: Path
) -> None:
    invalid = gpu_job("too-few")
    invalid["spec"]["workers"] = 0
    refused = kubetrain(cluster, namespace, "submit", "-f", manifest_file(tmp_path, invalid))
    assert refused.returncode == 2, refused
    assert f"TrainingJob {namespace}/too-few is invalid: spec.workers" in refused.stderr

    dry = kubetrain(cluster, namespace, "submit", "--dry-run", "-f", manifest_file(tmp_path, gpu_job("dry")))
    assert dry.returncode == 0, dry
    lines = dry.stdout.splitlines()
    assert lines[0] == f"TrainingJob {namespace}/dry"
    assert "2 worker(s) x 1 process(es), runtime pytorch, node pool a100-eu, 1 GPU(s) per worker" in dry.stdout
    assert "cost:      at most 2 GPU-hours" in dry.stdout
    assert f"residency: no DataResidencyPolicy selects namespace {namespace}" in dry.stdout
    assert f"budget:    no BudgetPolicy selects namespace {namespace}" in dry.stdout
    assert not jobs.exists("dry")


def test_submit_shows_the_residency_verdict_and_creates_nothing_it_would_refuse(
    cluster: LocalCluster, api: kubernetes.client.ApiClient, jobs: Jobs, namespace: str, tmp_path: Path
) -> None:
    policy = yaml.safe_load((Path(__file__).parents[2] / "examples" / "residency-eu-only.yaml").read_text())
    policy["metadata"]["name"] = namespace
    policy["spec"]["namespaceSelector"] = {"matchLabels": {"cli-test": namespace}}
    kubernetes.client.CoreV1Api(api).patch_namespace(namespace, {"metadata": {"labels": {"cli-test": namespace}}})
    custom = kubernetes.client.CustomObjectsApi(api)
    custom.create_cluster_custom_object("kubetrain.io", "v1alpha1", "dataresidencypolicies", policy)
    try:
        us = gpu_job("in-the-us")
        us["spec"]["nodePool"] = "h100-us"
        refused = kubetrain(cluster, namespace, "submit", "-f", manifest_file(tmp_path, us))
        assert refused.returncode == 1, refused
        assert f"residency: refused by {namespace}:" in refused.stdout
        assert "spec.nodePool: 'h100-us' breaks DataResidencyPolicy" in refused.stdout
        assert "not created: the operator would refuse in-the-us" in refused.stderr
        assert not jobs.exists("in-the-us")

        eu = kubetrain(cluster, namespace, "submit", "-f", manifest_file(tmp_path, gpu_job("in-the-eu")))
        assert eu.returncode == 0, eu
        assert f"residency: compliant with {namespace}, pods pinned to eu-west-1" in eu.stdout
        assert "trainingjob.kubetrain.io/in-the-eu created" in eu.stdout
        assert jobs.exists("in-the-eu")
    finally:
        custom.delete_cluster_custom_object("kubetrain.io", "v1alpha1", "dataresidencypolicies", namespace)


def test_get_list_describe_suspend_resume_cancel(
    cluster: LocalCluster, jobs: Jobs, namespace: str, tmp_path: Path
) -> None:
    created = kubetrain(cluster, namespace, "submit", "-f", manifest_file(tmp_path, gpu_job("kwok")))
    assert created.returncode == 0, created
    jobs.wait_phase("kwok", "Running")

    listed = kubetrain(cluster, namespace, "list")
    assert listed.returncode == 0, listed
    header, row = listed.stdout.splitlines()
    assert header.split() == ["NAME", "PHASE", "PROGRESS", "METRICS", "REASON", "AGE"]
    assert row.split()[:3] == ["kwok", "Running", "[....................]"]
    assert "AllWorkersRunning" in row
    got = kubetrain(cluster, namespace, "get", "kwok")
    assert got.returncode == 0 and got.stdout.splitlines()[1].split()[:-1] == row.split()[:-1], got

    described = kubetrain(cluster, namespace, "describe", "kwok")
    assert described.returncode == 0, described
    assert "Phase:         Running (AllWorkersRunning)" in described.stdout
    assert "Cost:          at most 2 GPU-hours" in described.stdout
    conditions = described.stdout.split("Conditions:")[1].split("Provenance:")[0]
    assert ["Running", "True", "AllWorkersRunning"] in [line.split()[:3] for line in conditions.splitlines()]
    assert "image:" in described.stdout.split("Provenance:")[1]
    assert "Normal" in described.stdout.split("Events:")[1]

    suspended = kubetrain(cluster, namespace, "suspend", "kwok")
    assert suspended.returncode == 0 and "kwok suspended" in suspended.stdout, suspended
    jobs.wait_phase("kwok", "Suspended")
    assert kubetrain(cluster, namespace, "get", "kwok").stdout.splitlines()[1].split()[1] == "Suspended"
    resumed = kubetrain(cluster, namespace, "resume", "kwok")
    assert resumed.returncode == 0 and "kwok resumed" in resumed.stdout, resumed
    jobs.wait_phase("kwok", "Running")

    cancelled = kubetrain(cluster, namespace, "cancel", "kwok")
    assert cancelled.returncode == 0 and "trainingjob.kubetrain.io/kwok deleted" in cancelled.stdout, cancelled
    wait_for(lambda: not jobs.exists("kwok"), what="kwok deleted")
    gone = kubetrain(cluster, namespace, "get", "kwok")
    assert gone.returncode == 1 and f"TrainingJob {namespace}/kwok not found" in gone.stderr, gone
    assert kubetrain(cluster, namespace, "cancel", "kwok").returncode == 1


@pytest.mark.parametrize(("outcome", "code"), [("Succeeded", 0), ("Failed", 1)])
def test_watch_exits_with_the_jobs_outcome(
    cluster: LocalCluster, jobs: Jobs, namespace: str, outcome: str, code: int
) -> None:
    name = jobs.create(gpu_job("watched"))
    watch = start(cluster, namespace, "watch", name)
    try:
        pods = jobs.wait_pods(name, 2, phase="Running")
        running = first_line_with(watch, "  watched  Running  ")
        for pod in pods:
            jobs.end_pod(pod.metadata.name, outcome, exit_code=0 if outcome == "Succeeded" else 1)
        out, err = watch.communicate(timeout=60)
    finally:
        watch.kill()
    assert watch.returncode == code, (running, out, err)
    assert f"  watched  {outcome}  " in out.splitlines()[-1], out


def test_the_client_and_the_cli_follow_a_job_that_really_trains_then_read_its_archive(
    cluster: LocalCluster, jobs: Jobs, namespace: str, tmp_path: Path
) -> None:
    data = tmp_path / "tabular.csv"
    subprocess.run([sys.executable, "-m", "kubetrain_trainer.datagen", "tabular", "--out", str(data), "--rows",
                    "2000", "--seed", "0"], check=True)
    manifest = example("pytorch-ddp-local.yaml")
    manifest["spec"]["dataset"]["uri"] = f"file://{data}"
    manifest["spec"]["output"]["uri"] = f"file://{tmp_path / 'output'}"
    client = Client(namespace=namespace, kubeconfig=cluster.kubeconfig)
    created = client.create(manifest)
    assert created.metadata.namespace == namespace and created.spec.workers == 2
    name = created.metadata.name

    watch = start(cluster, namespace, "watch", name)
    follow = start(cluster, namespace, "logs", "-f", name)
    try:
        seen = [job.status.phase.value for job in client.watch(name, timeout=600)]
        out, err = watch.communicate(timeout=60)
        logs, logs_err = follow.communicate(timeout=60)
    finally:
        watch.kill()
        follow.kill()
    assert seen[-1] == "Succeeded" and "Running" in seen, seen
    assert watch.returncode == 0, (out, err)
    assert any("epoch" in line and "ETA" in line and "Running" in line for line in out.splitlines()), out
    assert "Succeeded  [####################] 100%" in out.splitlines()[-1], out
    # The local node plays no kubelet API (devcluster/localnode: output stays in its state directory),
    # so the API server cannot proxy pods/log to it: `logs` must say so in one line and exit 1.
    assert follow.returncode == 1, (logs, logs_err)
    assert logs_err.startswith("kubetrain: the API server answered 500: ") and "containerLogs" in logs_err, logs_err
    assert len(logs_err.splitlines()) == 1, logs_err

    finished = client.wait(name, timeout=10)
    assert finished.status.phase.value == "Succeeded"
    metrics = client.metrics(name)
    assert metrics == finished.status.metrics and metrics["accuracy"] > 0.5
    one = kubetrain(cluster, namespace, "logs", name, "--rank", "1")
    assert one.returncode == 1 and "pytorch-ddp-local-worker-1/trainer" in one.stderr, one
    assert client.model_versions("no-such-model") == []

    jobs.patch_spec(name, {"runPolicy": {"cleanPodPolicy": "All"}})
    wait_for(lambda: not jobs.pods(name, include_terminating=True), timeout=60, what="the pods cleaned up")
    read_the_archive_without_pods(cluster, client, namespace, name, tmp_path)


def read_the_archive_without_pods(
    cluster: LocalCluster, client: Client, namespace: str, name: str, tmp_path: Path
) -> None:
    """`logs` falls back to the logs the trainer archived in spec.output.uri; `curve` draws the
    metric history there, and writes it as a PNG."""
    archive = f"file://{tmp_path / 'output'}/logs/"
    logs = kubetrain(cluster, namespace, "logs", name)
    assert logs.returncode == 0, logs
    assert logs.stderr == (
        f"kubetrain: no pods of TrainingJob {namespace}/{name} (attempt 0): not started yet, or cleaned up "
        f"(runPolicy.cleanPodPolicy); showing the archived logs in {archive}\n"
    ), logs.stderr
    lines = logs.stdout.splitlines()
    for rank in (0, 1):
        assert any(line.startswith(f"[rank {rank}] {{") and '"event": "training_started"' in line for line in lines)
    assert '"event": "exiting"' in lines[-1], lines[-3:]
    one = kubetrain(cluster, namespace, "logs", name, "--rank", "1")
    assert one.returncode == 0 and one.stdout.startswith("{") and '"rank": 0' not in one.stdout, one

    history = client.history(name)
    assert [r.metrics for r in history if r.phase == "test"] == [client.metrics(name)]
    drawn = kubetrain(cluster, namespace, "curve", name)
    assert drawn.returncode == 0, drawn
    charts = drawn.stdout.splitlines()
    assert charts[0].startswith("accuracy: o validation ") and " X test " in charts[0], charts[0]
    loss = next(line for line in charts if line.startswith("loss: "))
    assert loss.startswith("loss: * train ") and " o validation " in loss, loss
    assert sum(line.count("o") for line in charts[1:14]) >= 2, drawn.stdout  # the epochs' validation points

    png = tmp_path / "accuracy.png"
    drawn = kubetrain(cluster, namespace, "curve", name, "--metric", "accuracy", "--png", str(png))
    assert drawn.returncode == 0 and drawn.stdout.splitlines()[-1] == f"wrote {png}", drawn
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    assert struct.unpack(">II", data[16:24]) == (600, 320)  # one panel
    absent = kubetrain(cluster, namespace, "curve", name, "--metric", "f1")
    assert absent.returncode == 1, absent
    assert absent.stderr == f"kubetrain: no metric 'f1' in the history of {name}; it has: accuracy, loss\n"
