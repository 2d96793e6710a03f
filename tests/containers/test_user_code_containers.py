"""Users' own training code in real containers, delivered as users deliver it without an image of
their own: `kubectl create configmap --from-file` of the script, mounted into the `trainer`
container of the trainer image (the examples' podTemplate), and run by torchrun from the rendered
PET_* variables. The script that knows nothing of kubetrain trains over two pods; the script
reporting through the SDK gets its progress, last checkpoint and final metrics into status and
`kubectl get tj`, and its gates promote a ModelVersion.

Both jobs start together in one namespace (about 1.5 of the node's 2 CPUs), so the suite pays for
one training time, not two; each test then waits for its own job.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kubernetes
import pytest

from kubetrain.devcluster.cluster import LocalCluster
from tests.builders import example
from tests.containers.conftest import OUTPUT_CLAIM, REPO, generate_tabular, provide_output_volume
from tests.helm import Helm
from tests.helpers import file_digest, fresh_namespace
from tests.jobs import Jobs
from tests.registry import Registry

pytestmark = [pytest.mark.containers, pytest.mark.timeout(2400)]

USER_CODE = REPO / "examples" / "user-code"
SMALL = {"nodePool": "cpu", "resources": {"cpu": "500m", "memory": "1536Mi"}}


@dataclass(frozen=True)
class Started:
    namespace: str
    jobs: Jobs
    output: Path


def with_code_from_configmap(cluster: LocalCluster, namespace: str, manifest: dict[str, Any], script: str) -> None:
    """What the example's comment tells users to run: the ConfigMap its podTemplate mounts."""
    configmap = manifest["spec"]["podTemplate"]["spec"]["volumes"][0]["configMap"]["name"]
    cluster.kubectl("create", "configmap", configmap, "-n", namespace, f"--from-file={USER_CODE / script}")


def sdk_job() -> dict[str, Any]:
    """examples/user-script-torchrun.yaml with its data made by an init step in the trainer image
    and its output on a claim the test reads back from the host."""
    manifest = example("user-script-torchrun.yaml")
    spec = manifest["spec"]
    spec.update(SMALL)
    spec["dataset"]["uri"] = "file:///data/churn.csv"
    spec["output"]["uri"] = "file:///output/churn-sdk"
    template = spec["podTemplate"]["spec"]
    data = {"name": "data", "mountPath": "/data"}
    template["initContainers"] = [{
        "name": "generate-data",
        "command": generate_tabular("/data/churn.csv", 2000),
        "volumeMounts": [data],
    }]
    template["containers"][0]["volumeMounts"] += [data, {"name": "output", "mountPath": "/output"}]
    template["volumes"] += [{"name": "data", "emptyDir": {}},
                            {"name": "output", "persistentVolumeClaim": {"claimName": "kubetrain-output"}}]
    return manifest


@pytest.fixture(scope="module")
def started(
    real_cluster: LocalCluster, real_api: kubernetes.client.ApiClient, helm_operator: Helm,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Started]:
    core = kubernetes.client.CoreV1Api(real_api)
    output = tmp_path_factory.mktemp("user-code") / "output"
    with fresh_namespace(real_api, "user-code", prefix="c") as namespace:
        provide_output_volume(core, namespace, output)
        tutorial, sdk = example("user-script-ddp-tutorial.yaml"), sdk_job()
        tutorial["spec"].update(SMALL)
        with_code_from_configmap(real_cluster, namespace, tutorial, "ddp_tutorial.py")
        with_code_from_configmap(real_cluster, namespace, sdk, "train_with_sdk.py")
        real_cluster.apply([OUTPUT_CLAIM, tutorial, sdk], namespace=namespace)
        try:
            yield Started(namespace, Jobs(real_api, namespace), output)
        finally:
            core.delete_persistent_volume(f"output-{namespace}")


def test_plain_ddp_tutorial_from_a_configmap_trains_over_two_pods(
    real_cluster: LocalCluster, started: Started,
) -> None:
    status = started.jobs.wait_phase("ddp-tutorial", "Succeeded", timeout=900)
    # The whole status as text: pytest cuts a dict's repr, and with it the failed attempt's message.
    assert status["restarts"] == 0 and "metrics" not in status, json.dumps(status, indent=1)
    assert status["provenance"]["config"]["command"] == ["torchrun"]
    # Both pods' torchrun joined one group of two: each printed its epochs as global rank 0 or 1.
    logs = {
        rank: real_cluster.kubectl("logs", "-n", started.namespace, f"ddp-tutorial-worker-{rank}").stdout
        for rank in (0, 1)
    }
    assert "[GPU0] Epoch 3" in logs[0] and "[GPU1] Epoch 3" in logs[1], logs



def test_sdk_script_from_a_configmap_reports_and_is_promoted(
    real_cluster: LocalCluster, real_api: kubernetes.client.ApiClient, started: Started,
) -> None:
    jobs, output = started.jobs, started.output / "churn-sdk"
    status = jobs.wait_phase("churn-sdk", "Succeeded", timeout=900)

    metrics = status["metrics"]
    assert metrics["accuracy"] >= 0.75 and set(metrics) == {"accuracy", "loss"}, metrics
    progress = status["progress"]
    assert progress["percent"] == pytest.approx(100.0) and progress["totalEpochs"] == 6, progress
    assert progress["metrics"]["validationLoss"] > 0, progress
    checkpoint = status["lastCheckpoint"]
    step = checkpoint["step"]
    assert step == progress["step"] == progress["totalSteps"], (checkpoint, progress)
    assert checkpoint["uri"] == f"file:///output/churn-sdk/checkpoint-{step}.pt", checkpoint
    assert checkpoint["digest"] == file_digest(output / f"checkpoint-{step}.pt")
    provenance = status["provenance"]
    assert provenance["weightsDigest"] == file_digest(output / "model.pt")
    assert provenance["datasetProfile"]["rows"] == 2000, provenance

    promoted = jobs.wait_condition("churn-sdk", "Promoted", timeout=60)
    assert promoted["status"] == "True", promoted
    version = Registry(real_api, started.namespace).version(jobs.status("churn-sdk")["modelVersion"])
    assert version is not None and version["spec"]["metrics"] == metrics
    row = real_cluster.kubectl("get", "tj", "churn-sdk", "-n", started.namespace).stdout.splitlines()[1]
    assert "Succeeded" in row and " 100" in row and f"{metrics['accuracy']:.4g}"[:4] in row, row
