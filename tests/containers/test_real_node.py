"""The production path on a real node: the Helm-installed operator Pod admits and reconciles
jobs whose workers run the trainer image in containers, rendezvous through the headless
Service's DNS name, and write their model to a volume; what a real kubelet reports (an image
that cannot be pulled) shows in the job's status."""

from __future__ import annotations

import ipaddress
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import yaml

from kubetrain.devcluster import realnode
from kubetrain.devcluster.cluster import LocalCluster
from tests.containers.conftest import FIRST_JOB, OUTPUT_CLAIM, REPO, first_job_objects
from tests.helm import Helm
from tests.helpers import wait_for
from tests.jobs import Jobs

# A cold machine builds both images (the trainer's torch layer alone is GBs) and loads them into
# containerd inside the first test's fixtures: minutes, once per machine.
pytestmark = [pytest.mark.containers, pytest.mark.timeout(2400)]

def test_first_job_trains_in_containers_under_restricted_pod_security(
    real_cluster: LocalCluster, real_api: kubernetes.client.ApiClient, helm_operator: Helm,
    real_namespace: str, output_dir: Path,
) -> None:
    core = kubernetes.client.CoreV1Api(real_api)
    core.patch_namespace(real_namespace, {"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "restricted"}}})
    real_cluster.kubectl("apply", "-n", real_namespace, "-f", str(FIRST_JOB))
    jobs = Jobs(real_api, real_namespace)

    pods = jobs.wait_pods("first-job", 2, phase="Running", timeout=300)
    subnet = ipaddress.ip_network(realnode.POD_SUBNET)
    assert all(ipaddress.ip_address(p.status.pod_ip) in subnet for p in pods), "pods got IPs on the node's bridge"
    env = {e.name: e.value for e in pods[0].spec.containers[0].env}
    assert env["MASTER_ADDR"] == f"first-job-worker-0.{pods[0].spec.subdomain}", "rendezvous by DNS name"
    worker0 = next(p.metadata.name for p in pods if p.metadata.name.endswith("-worker-0"))
    logs = wait_for(lambda: real_cluster.kubectl("logs", "-n", real_namespace, worker0, check=False).stdout,
                    timeout=60, what="kubectl logs of worker 0")
    assert logs.strip(), "kubectl logs reads the container's output through the kubelet"
    # `kubetrain logs -f` follows every worker through the kubelet until the training ends.
    follow = subprocess.run(
        [sys.executable, "-m", "kubetrain.cli", "logs", "-f", "first-job", "-n", real_namespace,
         f"--kubeconfig={real_cluster.kubeconfig}"],
        capture_output=True, text=True, timeout=900,
    )
    assert follow.returncode == 0, follow.stderr
    assert "[rank 0]" in follow.stdout and "[rank 1]" in follow.stdout, follow.stdout[-2000:]

    status = jobs.wait_phase("first-job", "Succeeded", timeout=900)
    assert status["metrics"]["accuracy"] > 0.6, status
    assert (output_dir / "first-job").is_dir() and any((output_dir / "first-job").rglob("*.safetensors")), \
        sorted(str(p) for p in output_dir.rglob("*"))
    card = next((output_dir / "first-job").rglob("MODEL_CARD.md"), None) or next(
        (output_dir / "first-job").rglob("*card*"), None
    )
    assert card is not None, sorted(str(p) for p in output_dir.rglob("*"))


def test_the_operator_pod_serves_the_admission_webhook(
    real_cluster: LocalCluster, real_api: kubernetes.client.ApiClient, helm_operator: Helm, real_namespace: str,
) -> None:
    """A job a namespace's residency policy forbids is refused by the webhook that the operator
    Pod serves through its Service, before any pod exists."""
    policy = {
        "apiVersion": "kubetrain.io/v1alpha1", "kind": "DataResidencyPolicy",
        "metadata": {"name": f"only-gpu-{real_namespace}"},
        "spec": {"namespaces": [real_namespace], "enforcement": "Enforce", "allowedNodePools": ["a100-eu"]},
    }
    real_cluster.apply([policy])
    try:
        job = next(o for o in first_job_objects() if o["kind"] == "TrainingJob")
        refused = wait_for(
            lambda: (r := real_cluster.kubectl("apply", "-n", real_namespace, "-f", "-", input=json.dumps(job),
                                               check=False)).returncode != 0 and r,
            timeout=30, what="the webhook's refusal")
        assert "admission webhook" in refused.stderr and "cpu" in refused.stderr, refused.stderr
        assert Jobs(real_api, real_namespace).exists("first-job") is False
    finally:
        real_cluster.kubectl("delete", "drp", policy["metadata"]["name"], "--ignore-not-found")


def test_an_image_that_cannot_be_pulled_shows_in_the_status(
    real_cluster: LocalCluster, real_api: kubernetes.client.ApiClient, helm_operator: Helm, real_namespace: str,
) -> None:
    job = next(o for o in first_job_objects() if o["kind"] == "TrainingJob")
    job["metadata"]["name"] = "no-image"
    job["spec"]["image"] = "kubetrain.local/does-not-exist:1"
    job["spec"].pop("podTemplate")
    real_cluster.apply([job], namespace=real_namespace)
    jobs = Jobs(real_api, real_namespace)

    def pull_failed() -> dict[str, Any] | None:
        running = jobs.condition("no-image", "Running")
        ok = running and running["status"] == "False" and running["reason"] in ("ErrImagePull", "ImagePullBackOff")
        return running if ok else None

    running = wait_for(pull_failed, timeout=90, what="Running=False/ErrImagePull")
    assert "kubetrain.local/does-not-exist:1" in str(running["message"]), running
    warnings = wait_for(
        lambda: [e for e in jobs.events("no-image") if e.reason in ("ErrImagePull", "ImagePullBackOff")],
        timeout=30,
        what="the image pull Warning Event",
    )
    assert warnings[0].type == "Warning"
    row = real_cluster.kubectl("get", "tj", "no-image", "-n", real_namespace).stdout.splitlines()[1]
    assert {"ErrImagePull", "ImagePullBackOff"} & set(row.split()), row


def test_lora_fine_tuning_in_containers_promotes_a_model_version(
    real_cluster: LocalCluster, real_api: kubernetes.client.ApiClient, helm_operator: Helm,
    real_namespace: str, output_dir: Path,
) -> None:
    """examples/llm-finetune-lora.yaml on the cpu pool: init steps in the trainer image build the
    toy model and the instruction data (no hub), two workers fine-tune it with LoRA over DDP in
    containers, and the perplexity gate promotes a ModelVersion."""
    job = yaml.safe_load((REPO / "examples" / "llm-finetune-lora.yaml").read_text())
    spec = job["spec"]
    spec.update(nodePool="cpu", resources={"cpu": "500m", "memory": "1Gi"})
    spec["task"]["finetune"]["checkpointUri"] = "file:///data/toy-llama"
    spec["dataset"]["uri"] = "file:///data/facts.jsonl"
    spec["output"] = {"uri": "file:///output/facts-lora"}
    toy = ["python3", "-m", "kubetrain_trainer.llm.toy"]
    mount = [{"name": "data", "mountPath": "/data"}]
    spec["podTemplate"] = {"spec": {
        "initContainers": [
            {"name": "toy-model", "command": [*toy, "model", "--out", "/data/toy-llama"], "volumeMounts": mount},
            {"name": "toy-data", "command": [*toy, "instructions", "--out", "/data/facts.jsonl", "--rows", "300"],
             "volumeMounts": mount},
        ],
        "containers": [{"name": "trainer", "volumeMounts": [*mount, {"name": "output", "mountPath": "/output"}]}],
        "volumes": [{"name": "data", "emptyDir": {}},
                    {"name": "output", "persistentVolumeClaim": {"claimName": "kubetrain-output"}}],
    }}
    real_cluster.apply([OUTPUT_CLAIM, job], namespace=real_namespace)
    jobs = Jobs(real_api, real_namespace)
    status = jobs.wait_phase("facts-lora", "Succeeded", timeout=900)
    assert status["metrics"]["perplexity"] <= 5.0, status["metrics"]
    assert (output_dir / "facts-lora" / "adapter").is_dir(), sorted(str(p) for p in output_dir.rglob("*"))
    promoted = jobs.wait_condition("facts-lora", "Promoted", timeout=60)
    assert promoted["status"] == "True" and jobs.status("facts-lora").get("modelVersion"), promoted
