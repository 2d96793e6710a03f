"""The Ray renderer: head pod + headless head Service + worker pods, sharing placement, env,
labels and access with the PyTorch path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from kubetrain.api import TrainingJob, default_catalogue
from kubetrain.render import InvalidSpec, RenderSettings, render_job
from kubetrain.render.ray import render_ray

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "ray-train.yaml"
SETTINGS = RenderSettings(default_image="ghcr.io/kubetrain/trainer:test")
CATALOGUE = default_catalogue()


def job(restarts: int = 0, **spec: Any) -> TrainingJob:
    raw = yaml.safe_load(EXAMPLE.read_text())
    raw["metadata"].update(namespace="team-a", uid="uid-1", generation=1)
    raw["spec"].update(spec)
    raw["status"] = {"restarts": restarts}
    return TrainingJob.model_validate(raw)


def env(pod: dict[str, Any]) -> dict[str, str]:
    return {var["name"]: var["value"] for var in pod["spec"]["containers"][0]["env"]}


def test_render_job_dispatches_ray_to_its_renderer() -> None:
    objects = render_job(job(), CATALOGUE, SETTINGS)
    assert [o["kind"] for o in objects.all()] == ["ServiceAccount", "Role", "RoleBinding", "Service", "Pod", "Pod", "Pod"]
    assert [p["metadata"]["name"] for p in objects.pods] == ["ray-train-head", "ray-train-worker-0", "ray-train-worker-1"]
    with pytest.raises(InvalidSpec, match="spec.nodePool"):
        render_job(job(nodePool="nope"), CATALOGUE, SETTINGS)


def test_head_service_exposes_gcs_dashboard_and_client_of_the_head_only() -> None:
    service = render_ray(job(), CATALOGUE, SETTINGS).service
    assert service["metadata"]["name"] == "ray-train-head"
    assert service["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    assert service["spec"]["clusterIP"] == "None" and service["spec"]["publishNotReadyAddresses"] is True
    assert service["spec"]["selector"] == {"kubetrain.io/job-name": "ray-train", "kubetrain.io/role": "head"}
    assert {p["name"]: p["port"] for p in service["spec"]["ports"]} == {"gcs": 6379, "dashboard": 8265, "client": 10001}


def test_head_runs_the_ray_launcher_without_gpus_on_the_job_pool() -> None:
    head = render_ray(job(restarts=2), CATALOGUE, SETTINGS).pods[0]
    labels = head["metadata"]["labels"]
    assert labels["kubetrain.io/role"] == "head" and labels["kubetrain.io/attempt"] == "2"
    assert labels["kubetrain.io/replica-index"] == "0"
    container = head["spec"]["containers"][0]
    assert container["command"] == ["python", "-m", "kubetrain_trainer.ray_driver"]
    assert "--port=$(KUBETRAIN_RAY_GCS_PORT)" in container["args"]
    assert "--num-cpus=0" in container["args"] and "--num-gpus=0" in container["args"]
    assert "--disable-usage-stats" in container["args"], "rayStartParams with an empty value is a bare flag"
    assert {p["containerPort"] for p in container["ports"]} == {6379, 8265, 10001}
    assert container["resources"] == {"requests": {"cpu": "2", "memory": "8Gi"}, "limits": {"memory": "8Gi"}}
    assert head["spec"]["nodeSelector"] == {"kubetrain.io/node-pool": "a100-eu"}
    assert any(t["key"] == "nvidia.com/gpu" for t in head["spec"]["tolerations"])
    assert head["spec"]["serviceAccountName"] == "ray-train-trainer"
    assert head["spec"]["restartPolicy"] == "Never"
    variables = env(head)
    assert variables["KUBETRAIN_RAY_HEAD_HOST"] == "ray-train-head.team-a.svc"
    assert variables["KUBETRAIN_RAY_GCS_PORT"] == "6379"
    assert variables["KUBETRAIN_RAY_WORKERS"] == "2" and variables["KUBETRAIN_RAY_TRAIN_WORKERS"] == "2"
    assert variables["KUBETRAIN_RAY_USE_GPU"] == "true" and variables["KUBETRAIN_RAY_MAX_FAILURES"] == "3"
    assert variables["KUBETRAIN_ATTEMPT"] == "2" and variables["KUBETRAIN_JOB_NAME"] == "ray-train"
    assert variables["KUBETRAIN_DATASET_URI"] == "file:///var/lib/kubetrain/data/tabular.csv"
    assert "MASTER_ADDR" not in variables, "Ray Train sets up torch.distributed itself"


def test_workers_join_the_head_and_advertise_their_gpus() -> None:
    pods = render_ray(job(nprocPerNode=1), CATALOGUE, SETTINGS).pods[1:]
    for index, pod in enumerate(pods):
        labels = pod["metadata"]["labels"]
        assert (labels["kubetrain.io/role"], labels["kubetrain.io/replica-index"]) == ("worker", str(index))
        container = pod["spec"]["containers"][0]
        assert container["command"] == ["ray", "start"]
        assert container["args"][:4] == [
            "--address=$(KUBETRAIN_RAY_HEAD_HOST):$(KUBETRAIN_RAY_GCS_PORT)",
            "--num-cpus=1",
            "--num-gpus=1",
            "--block",
        ]
        assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
        assert pod["spec"]["affinity"]["nodeAffinity"], "region affinity as for PyTorch"
        assert env(pod)["KUBETRAIN_RAY_HEAD_HOST"] == "ray-train-head.team-a.svc"


def test_a_custom_command_becomes_the_driver_after_the_head_flags() -> None:
    head = render_ray(job(task=None, command=["python", "my_driver.py"], args=["--lr", "1"]), CATALOGUE, SETTINGS).pods[0]
    args = head["spec"]["containers"][0]["args"]
    assert args[args.index("--"):] == ["--", "python", "my_driver.py", "--lr", "1"]

