"""The Ray renderer: head pod + headless head Service + worker pods, sharing placement,
residency, env, labels and access with the PyTorch path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kubetrain.render import InvalidSpec, render_job
from kubetrain.render.ray import advertised_cpus, render_ray
from tests.builders import JobBuilder
from tests.unit.test_render_placement import region_of
from tests.unit.test_render_pytorch import CATALOGUE, SETTINGS, env

RAY = JobBuilder.example("ray-train.yaml").placed("team-a").restarts(0)


def container(pod: dict[str, Any]) -> dict[str, Any]:
    [only] = pod["spec"]["containers"]
    return only


def test_render_job_dispatches_ray_to_its_renderer() -> None:
    objects = render_job(RAY.obj(), CATALOGUE, SETTINGS)
    assert [o["kind"] for o in objects.all()] == [
        "ServiceAccount",
        "Role",
        "RoleBinding",
        "Service",
        "Pod",
        "Pod",
        "Pod",
    ]
    assert [p["metadata"]["name"] for p in objects.pods] == [
        "ray-train-head",
        "ray-train-worker-0",
        "ray-train-worker-1",
    ]
    with pytest.raises(InvalidSpec, match="spec.nodePool"):
        render_job(RAY.spec(nodePool="nope").obj(), CATALOGUE, SETTINGS)


def test_head_service_exposes_gcs_dashboard_and_client_of_the_head_only() -> None:
    service = render_ray(RAY.obj(), CATALOGUE, SETTINGS).service
    assert service["metadata"]["name"] == "ray-train-head"
    [owner] = service["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["uid"], owner["controller"]) == (
        "TrainingJob",
        "ray-train",
        "uid-1",
        True,
    )
    assert service["spec"]["clusterIP"] == "None" and service["spec"]["publishNotReadyAddresses"] is True
    assert service["spec"]["selector"] == {"kubetrain.io/job-name": "ray-train", "kubetrain.io/role": "head"}
    assert {p["name"]: p["port"] for p in service["spec"]["ports"]} == {"gcs": 6379, "dashboard": 8265, "client": 10001}


def test_head_runs_the_launcher_and_the_default_driver_without_gpus_on_the_job_pool() -> None:
    head = render_ray(RAY.restarts(2).obj(), CATALOGUE, SETTINGS).pods[0]
    assert head["metadata"]["labels"] == {
        "app.kubernetes.io/name": "kubetrain-trainer",
        "app.kubernetes.io/instance": "ray-train",
        "app.kubernetes.io/component": "head",
        "app.kubernetes.io/managed-by": "kubetrain",
        "kubetrain.io/job-name": "ray-train",
        "kubetrain.io/role": "head",
        "kubetrain.io/replica-index": "0",
        "kubetrain.io/attempt": "2",
        "kubetrain.io/workers": "2",
    }
    assert head["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    c = container(head)
    assert c["command"] == ["python", "-m", "kubetrain_trainer.ray_head"]
    assert c["args"] == [
        "--port=$(KUBETRAIN_RAY_GCS_PORT)",
        "--dashboard-host=0.0.0.0",
        "--dashboard-port=$(KUBETRAIN_RAY_DASHBOARD_PORT)",
        "--ray-client-server-port=$(KUBETRAIN_RAY_CLIENT_PORT)",
        "--num-cpus=0",
        "--num-gpus=0",
        "--disable-usage-stats",
        "--",
        "python",
        "-m",
        "kubetrain_trainer.ray_train",
    ]
    assert {p["name"]: p["containerPort"] for p in c["ports"]} == {"gcs": 6379, "dashboard": 8265, "client": 10001}
    assert c["resources"] == {"requests": {"cpu": "2", "memory": "8Gi"}, "limits": {"memory": "8Gi"}}, "no GPU"
    assert c["terminationMessagePath"] == "/dev/termination-log"
    assert head["spec"]["nodeSelector"] == {"kubetrain.io/node-pool": "a100-eu"}
    assert any(t["key"] == "nvidia.com/gpu" for t in head["spec"]["tolerations"])
    assert region_of(head["spec"]["affinity"]) == ["eu-west-1"]
    assert head["spec"]["serviceAccountName"] == "ray-train-trainer"
    assert head["spec"]["restartPolicy"] == "Never"


def test_head_env_carries_the_scaling_config_and_the_job_contract() -> None:
    variables = env(render_ray(RAY.spec(workers=3, nprocPerNode=2).restarts(2).obj(), CATALOGUE, SETTINGS).pods[0])
    assert {k: v for k, v in variables.items() if k.startswith("KUBETRAIN_RAY_")} == {
        "KUBETRAIN_RAY_HEAD_HOST": "ray-train-head.team-a.svc",
        "KUBETRAIN_RAY_GCS_PORT": "6379",
        "KUBETRAIN_RAY_DASHBOARD_PORT": "8265",
        "KUBETRAIN_RAY_CLIENT_PORT": "10001",
        "KUBETRAIN_RAY_WORKERS": "3",
        "KUBETRAIN_RAY_TRAIN_WORKERS": "6",
        "KUBETRAIN_RAY_CPUS_PER_TRAIN_WORKER": "2",
        "KUBETRAIN_RAY_GPUS_PER_TRAIN_WORKER": "0.5",
        "KUBETRAIN_RAY_MAX_FAILURES": "3",
    }
    assert variables["KUBETRAIN_ATTEMPT"] == "2" and variables["KUBETRAIN_JOB_NAME"] == "ray-train"
    assert variables["KUBETRAIN_JOB_UID"] == "uid-1"
    assert variables["KUBETRAIN_DATASET_URI"] == "file:///var/lib/kubetrain/data/tabular.csv"
    assert '"type":"tabular-classification"' in variables["KUBETRAIN_TASK"]
    assert "MASTER_ADDR" not in variables and "WORLD_SIZE" not in variables, "Ray Train sets up torch.distributed"


def test_workers_join_the_head_and_advertise_their_cpus_and_gpus() -> None:
    job = RAY.spec(resources={"cpu": "4", "memory": "16Gi", "gpus": 2}).restarts(1).obj()
    pods = render_ray(job, CATALOGUE, SETTINGS).pods[1:]
    assert len(pods) == 2
    for index, pod in enumerate(pods):
        labels = pod["metadata"]["labels"]
        assert (labels["kubetrain.io/role"], labels["kubetrain.io/replica-index"]) == ("worker", str(index))
        assert labels["kubetrain.io/attempt"] == "1"
        assert pod["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
        c = container(pod)
        assert c["command"] == ["ray", "start"]
        assert c["args"] == [
            "--address=$(KUBETRAIN_RAY_HEAD_HOST):$(KUBETRAIN_RAY_GCS_PORT)",
            "--num-cpus=4",
            "--num-gpus=2",
            "--block",
            "--disable-usage-stats",
        ]
        assert c["resources"] == {
            "requests": {"cpu": "4", "memory": "16Gi", "nvidia.com/gpu": "2"},
            "limits": {"memory": "16Gi", "nvidia.com/gpu": "2"},
        }
        assert "ports" not in c
        assert pod["spec"]["nodeSelector"] == {"kubetrain.io/node-pool": "a100-eu"}
        assert pod["spec"]["tolerations"] == [
            {"key": "nvidia.com/gpu", "operator": "Equal", "value": "present", "effect": "NoSchedule"}
        ]
        assert region_of(pod["spec"]["affinity"]) == ["eu-west-1"]
        assert pod["spec"]["serviceAccountName"] == "ray-train-trainer"
        variables = env(pod)
        assert variables["KUBETRAIN_RAY_HEAD_HOST"] == "ray-train-head.team-a.svc"
        assert variables["KUBETRAIN_RAY_GCS_PORT"] == "6379" and variables["KUBETRAIN_ATTEMPT"] == "1"


def test_every_ray_pod_runs_without_ray_token_auth_since_no_pod_could_read_the_heads_token() -> None:
    pods = render_ray(RAY.obj(), CATALOGUE, SETTINGS).pods
    assert [env(pod)["RAY_AUTH_MODE"] for pod in pods] == ["disabled"] * 3


def test_residency_regions_pin_the_head_and_every_worker() -> None:
    pods = render_ray(RAY.spec(nodePool="cpu", resources={"gpus": 0}).obj(), CATALOGUE, SETTINGS, ["us-east-1"]).pods
    assert [region_of(p["spec"]["affinity"]) for p in pods] == [["us-east-1"]] * 3
    unconstrained = render_ray(RAY.spec(nodePool="cpu", resources={"gpus": 0}).obj(), CATALOGUE, SETTINGS).pods
    assert [p["spec"].get("affinity") for p in unconstrained] == [None] * 3, "the cpu pool spans regions"
    with pytest.raises(InvalidSpec, match="residency"):
        render_ray(RAY.obj(), CATALOGUE, SETTINGS, ["us-east-1"])


def test_a_custom_command_becomes_the_driver_after_the_head_flags() -> None:
    spec = {"task": None, "command": ["python", "my_driver.py"], "args": ["--lr", "1"]}
    args = container(render_ray(RAY.spec(**spec).obj(), CATALOGUE, SETTINGS).pods[0])["args"]
    assert args[args.index("--"):] == ["--", "python", "my_driver.py", "--lr", "1"]


def test_cpu_workers_train_without_gpus_and_user_env_reaches_every_pod() -> None:
    spec = {"nodePool": "cpu", "resources": {"cpu": "500m"}, "env": [{"name": "RAY_DEDUP_LOGS", "value": "0"}]}
    head, *workers = render_ray(RAY.spec(**spec).obj(), CATALOGUE, SETTINGS).pods
    assert "tolerations" not in head["spec"]
    assert env(head)["KUBETRAIN_RAY_GPUS_PER_TRAIN_WORKER"] == "0"
    assert env(head)["KUBETRAIN_RAY_CPUS_PER_TRAIN_WORKER"] == "1", "at least one CPU per training process"
    for pod in workers:
        assert "--num-gpus=0" in container(pod)["args"] and "--num-cpus=1" in container(pod)["args"]
        assert "resources" not in container(pod) or "nvidia.com/gpu" not in container(pod)["resources"].get(
            "requests", {}
        )
    assert all(env(p)["RAY_DEDUP_LOGS"] == "0" for p in [head, *workers])


@pytest.mark.parametrize(
    ("cpu", "nproc", "expected"), [(None, 1, 1), (None, 4, 4), ("8", 2, 8), ("2500m", 1, 2), ("500m", 2, 2)]
)
def test_advertised_cpus_are_the_whole_request_and_at_least_one_per_process(
    cpu: str | None, nproc: int, expected: int
) -> None:
    resources = {"gpus": 0} if cpu is None else {"gpus": 0, "cpu": cpu}
    assert advertised_cpus(RAY.spec(nodePool="cpu", resources=resources, nprocPerNode=nproc).obj().spec) == expected


def test_ray_start_params_owned_by_the_operator_are_refused() -> None:
    with pytest.raises(ValueError, match="num-gpus"):
        RAY.spec(ray={"rayStartParams": {"num-gpus": "3"}}).obj()
    with pytest.raises(ValueError, match="leading dashes"):
        RAY.spec(ray={"rayStartParams": {"--object-store-memory": "1"}}).obj()


def test_docs_contracts_lists_exactly_the_ray_variables_each_pod_gets() -> None:
    contracts = (Path(__file__).resolve().parents[2] / "docs" / "contracts.md").read_text()
    section = contracts.split("## Ray pod environment", 1)[1].split("\n## ", 1)[0]
    documented: dict[str, set[str]] = {"head": set(), "all": set()}
    for row in section.splitlines():
        cells = [c.strip() for c in row.strip("|").split("|")]
        if len(cells) == 3 and cells[1] in documented:
            documented[cells[1]] |= {name.strip("` ") for name in cells[0].split(",")}
    head, *workers = render_ray(RAY.obj(), CATALOGUE, SETTINGS, None).pods

    def ray_names(pod: dict[str, Any]) -> set[str]:
        return {name for name in env(pod) if name.startswith(("KUBETRAIN_RAY_", "RAY_"))}

    assert ray_names(workers[0]) == documented["all"]
    assert ray_names(head) == documented["all"] | documented["head"]
