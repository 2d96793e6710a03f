"""The PyTorch renderer: headless Service plus one bare Pod per worker, env per docs/contracts.md."""

from __future__ import annotations

import json
from typing import Any

import pytest

from kubetrain.api import default_catalogue
from kubetrain.render import InvalidSpec, RenderSettings, render_job, render_pytorch
from tests.builders import JobBuilder

SETTINGS = RenderSettings(default_image="ghcr.io/kubetrain/trainer:test")
CATALOGUE = default_catalogue()


# The example as the operator would see it: in a namespace, with a uid, before any restart.
DDP = JobBuilder.example("pytorch-ddp.yaml").placed("team-a").restarts(0)


def env(pod: dict[str, Any]) -> dict[str, str]:
    return {var["name"]: var["value"] for var in pod["spec"]["containers"][0]["env"]}


def test_headless_service_for_rendezvous_dns() -> None:
    service = render_pytorch(DDP.obj(), CATALOGUE, SETTINGS).service
    assert service["metadata"]["name"] == "pytorch-ddp" and service["metadata"]["namespace"] == "team-a"
    assert service["metadata"]["labels"] == {
        "app.kubernetes.io/name": "kubetrain-trainer", "app.kubernetes.io/instance": "pytorch-ddp",
        "app.kubernetes.io/managed-by": "kubetrain", "kubetrain.io/job-name": "pytorch-ddp",
    }
    assert service["spec"]["clusterIP"] == "None" and service["spec"]["publishNotReadyAddresses"] is True
    assert service["spec"]["selector"] == {
        "kubetrain.io/job-name": "pytorch-ddp", "kubetrain.io/role": "worker", "kubetrain.io/replica-index": "0",
    }, "worker 0 alone: the rendezvous names no other worker, and each selected pod costs an EndpointSlice update"
    assert [p["port"] for p in service["spec"]["ports"]] == [29500]


@pytest.mark.parametrize(("workers", "nproc"), [(1, 1), (2, 1), (3, 4)])
def test_env_follows_the_contract_for_every_rank(workers: int, nproc: int) -> None:
    pods = render_pytorch(DDP.spec(workers=workers, nprocPerNode=nproc).restarts(2).obj(), CATALOGUE, SETTINGS).pods
    assert len(pods) == workers
    for index, pod in enumerate(pods):
        variables = env(pod)
        distributed = {
            "MASTER_ADDR": "pytorch-ddp-worker-0.pytorch-ddp",
            "MASTER_PORT": "29500",
            "WORLD_SIZE": str(workers * nproc),
            "NNODES": str(workers),
            "NODE_RANK": str(index),
            "RANK": str(index * nproc),
            "NPROC_PER_NODE": str(nproc),
        }
        torchrun = {
            f"PET_{k}": distributed[k] for k in ("NNODES", "NPROC_PER_NODE", "NODE_RANK", "MASTER_ADDR", "MASTER_PORT")
        }
        kubetrain = {
            "KUBETRAIN_JOB_NAME": "pytorch-ddp",
            "KUBETRAIN_JOB_NAMESPACE": "team-a",
            "KUBETRAIN_JOB_UID": "uid-1",
            "KUBETRAIN_ATTEMPT": "2",
            "KUBETRAIN_DATASET_URI": "file:///var/lib/kubetrain/data/tabular.csv",
            "KUBETRAIN_OUTPUT_URI": "file:///var/lib/kubetrain/output/pytorch-ddp",
            "KUBETRAIN_TERMINATION_MESSAGE_PATH": "/dev/termination-log",
            "KUBETRAIN_IMAGE": SETTINGS.default_image,
        }
        assert {k: v for k, v in variables.items() if k != "KUBETRAIN_TASK"} == {**distributed, **torchrun, **kubetrain}
        task = json.loads(variables["KUBETRAIN_TASK"])
        assert task["type"] == "tabular-classification" and task["batchSize"] == 64
        assert task["model"] == {"hiddenSizes": [128, 64]}, "unset knobs are left to the trainer's defaults"


def test_task_is_omitted_when_a_custom_command_runs() -> None:
    [pod] = render_pytorch(
        DDP.spec(workers=1, task=None, command=["python", "train.py"], args=["--x"]).obj(), CATALOGUE, SETTINGS
    ).pods
    container = pod["spec"]["containers"][0]
    assert container["command"] == ["python", "train.py"] and container["args"] == ["--x"]
    assert "KUBETRAIN_TASK" not in env(pod)


def test_worker_pods_are_bare_pods_with_identity_ownership_and_placement() -> None:
    pods = render_pytorch(DDP.restarts(1).obj(), CATALOGUE, SETTINGS).pods
    for index, pod in enumerate(pods):
        meta, spec = pod["metadata"], pod["spec"]
        assert pod["kind"] == "Pod" and meta["name"] == f"pytorch-ddp-worker-{index}"
        assert meta["labels"] == {
            "app.kubernetes.io/name": "kubetrain-trainer",
            "app.kubernetes.io/instance": "pytorch-ddp",
            "app.kubernetes.io/component": "worker",
            "app.kubernetes.io/managed-by": "kubetrain",
            "kubetrain.io/job-name": "pytorch-ddp",
            "kubetrain.io/role": "worker",
            "kubetrain.io/replica-index": str(index),
            "kubetrain.io/attempt": "1",
            "kubetrain.io/workers": "2",
        }
        assert meta["ownerReferences"] == [
            {
                "apiVersion": "kubetrain.io/v1alpha1",
                "kind": "TrainingJob",
                "name": "pytorch-ddp",
                "uid": "uid-1",
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
        assert spec["hostname"] == meta["name"] and spec["subdomain"] == "pytorch-ddp"
        assert spec["restartPolicy"] == "Never"
        assert spec["nodeSelector"] == {"kubetrain.io/node-pool": "a100-eu"}
        assert {"key": "nvidia.com/gpu", "operator": "Equal", "value": "present", "effect": "NoSchedule"} in spec[
            "tolerations"
        ]
        [container] = spec["containers"]
        assert container["name"] == "trainer" and container["image"] == SETTINGS.default_image
        assert container["terminationMessagePath"] == "/dev/termination-log"
        assert container["terminationMessagePolicy"] == "FallbackToLogsOnError"
        assert (
            container["resources"]["requests"]["nvidia.com/gpu"]
            == container["resources"]["limits"]["nvidia.com/gpu"]
            == "1"
        )
        assert "command" not in container, "the image's entrypoint (the trainer) runs"


def test_spec_image_wins_over_the_default() -> None:
    assert (
        render_pytorch(DDP.spec(image="my/img:1").obj(), CATALOGUE, SETTINGS).pods[0]["spec"]["containers"][0]["image"]
        == "my/img:1"
    )


def test_user_env_is_appended_after_the_contract() -> None:
    pod = render_pytorch(DDP.spec(env=[{"name": "NCCL_DEBUG", "value": "INFO"}]).obj(), CATALOGUE, SETTINGS).pods[0]
    names = [v["name"] for v in pod["spec"]["containers"][0]["env"]]
    assert names[0] == "MASTER_ADDR" and names[-1] == "NCCL_DEBUG"


def test_pod_template_adds_but_never_overrides_operator_fields() -> None:
    template = {
        "metadata": {
            "labels": {"team": "vision", "kubetrain.io/attempt": "99", "kubetrain.io/job-name": "evil"},
            "annotations": {"sidecar.istio.io/inject": "false"},
        },
        "spec": {
            "serviceAccountName": "trainer",
            "securityContext": {"runAsNonRoot": True},
            "volumes": [{"name": "shm", "emptyDir": {"medium": "Memory"}}],
            "restartPolicy": "Always",
            "hostname": "evil",
            "nodeSelector": {"kubetrain.io/node-pool": "cpu", "disk": "ssd"},
            "tolerations": [{"key": "dedicated", "operator": "Exists"}],
            "affinity": {
                "podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": []},
                "nodeAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": {
                        "nodeSelectorTerms": [
                            {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]},
                            {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["b"]}]},
                        ]
                    }
                },
            },
            "containers": [
                {
                    "name": "trainer",
                    "image": "evil/image",
                    "volumeMounts": [{"name": "shm", "mountPath": "/dev/shm"}],
                    "env": [{"name": "RANK", "value": "7"}, {"name": "HF_HOME", "value": "/cache"}],
                    "resources": {"requests": {"nvidia.com/gpu": "8", "ephemeral-storage": "10Gi"}},
                },
                {"name": "sidecar", "image": "busybox"},
            ],
        },
    }
    pod = render_pytorch(DDP.spec(podTemplate=template).obj(), CATALOGUE, SETTINGS).pods[0]
    meta, spec = pod["metadata"], pod["spec"]
    assert meta["labels"]["team"] == "vision"
    assert meta["labels"]["kubetrain.io/attempt"] == "0" and meta["labels"]["kubetrain.io/job-name"] == "pytorch-ddp"
    assert meta["annotations"] == {"sidecar.istio.io/inject": "false"}
    assert spec["serviceAccountName"] == "trainer"
    assert spec["securityContext"] == {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
    assert spec["volumes"] == template["spec"]["volumes"]
    assert spec["restartPolicy"] == "Never" and spec["hostname"] == "pytorch-ddp-worker-0"
    assert spec["nodeSelector"] == {"kubetrain.io/node-pool": "a100-eu", "disk": "ssd"}
    assert {"key": "dedicated", "operator": "Exists"} in spec["tolerations"]
    assert any(t["key"] == "nvidia.com/gpu" for t in spec["tolerations"])
    assert "podAntiAffinity" in spec["affinity"]
    terms = spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert len(terms) == 2, "the region is ANDed into each user term, not ORed as a new one"
    for term in terms:
        assert {"key": "topology.kubernetes.io/region", "operator": "In", "values": ["eu-west-1"]} in term[
            "matchExpressions"
        ]
    trainer, sidecar = spec["containers"]
    assert trainer["name"] == "trainer" and sidecar["name"] == "sidecar"
    assert trainer["image"] == SETTINGS.default_image
    assert trainer["volumeMounts"] == [{"name": "shm", "mountPath": "/dev/shm"}]
    variables = env(pod)
    assert variables["RANK"] == "0" and variables["HF_HOME"] == "/cache"
    assert [v["name"] for v in trainer["env"]].count("RANK") == 1
    assert trainer["resources"]["requests"]["nvidia.com/gpu"] == "1"
    assert trainer["resources"]["requests"]["ephemeral-storage"] == "10Gi"
    assert template["spec"]["containers"][0]["env"][0] == {"name": "RANK", "value": "7"}, "the spec is not mutated"


def test_pods_meet_pod_security_restricted_unless_the_template_loosens_it() -> None:
    pod = render_pytorch(DDP.obj(), CATALOGUE, SETTINGS).pods[0]
    spec = pod["spec"]
    (trainer,) = spec["containers"]
    assert spec["securityContext"] == {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
    assert trainer["securityContext"] == {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
    assert spec["volumes"] == [{"name": "dshm", "emptyDir": {"medium": "Memory"}}]
    assert trainer["volumeMounts"] == [{"name": "dshm", "mountPath": "/dev/shm"}]

    template = {"spec": {
        "securityContext": {"runAsUser": 0, "runAsNonRoot": False},
        "volumes": [{"name": "data", "emptyDir": {}}],
        "containers": [{"name": "trainer", "securityContext": {"capabilities": {"add": ["SYS_PTRACE"]}},
                        "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
    }}
    loosened = render_pytorch(DDP.spec(podTemplate=template).obj(), CATALOGUE, SETTINGS).pods[0]["spec"]
    assert loosened["securityContext"] == {"runAsUser": 0, "runAsNonRoot": False,
                                           "seccompProfile": {"type": "RuntimeDefault"}}
    assert loosened["containers"][0]["securityContext"] == {"allowPrivilegeEscalation": False,
                                                            "capabilities": {"add": ["SYS_PTRACE"]}}
    assert loosened["containers"][0]["volumeMounts"] == [{"name": "dshm", "mountPath": "/dev/shm"},
                                                         {"name": "data", "mountPath": "/data"}]
    assert loosened["volumes"] == [{"name": "data", "emptyDir": {}}, {"name": "dshm", "emptyDir": {"medium": "Memory"}}]


def test_render_job_refuses_an_unknown_pool_and_renders_a_valid_job() -> None:
    with pytest.raises(InvalidSpec, match="spec.nodePool"):
        render_job(DDP.spec(nodePool="nope").obj(), CATALOGUE, SETTINGS)
    assert len(render_job(DDP.obj(), CATALOGUE, SETTINGS).all()) == 6


def test_long_job_names_give_valid_hostnames_and_master_addr() -> None:
    long_job = DDP.obj()
    long_job.metadata.name = "x" * 63
    pods = render_pytorch(long_job, CATALOGUE, SETTINGS).pods
    assert all(len(p["metadata"]["name"]) <= 63 for p in pods)
    assert env(pods[1])["MASTER_ADDR"] == f"{pods[0]['spec']['hostname']}.{pods[0]['spec']['subdomain']}"


def test_an_init_step_without_an_image_runs_the_trainer_image() -> None:
    template = {"spec": {"initContainers": [
        {"name": "generate-data", "command": ["python3", "-m", "kubetrain_trainer.datagen"]},
        {"name": "fetch", "image": "curlimages/curl:8"},
    ]}}
    pods = render_pytorch(DDP.spec(podTemplate=template).obj(), CATALOGUE, SETTINGS).pods
    for pod in pods:
        inits = pod["spec"]["initContainers"]
        assert inits[0]["image"] == pod["spec"]["containers"][0]["image"] == SETTINGS.default_image
        assert inits[1]["image"] == "curlimages/curl:8"
    assert "image" not in template["spec"]["initContainers"][0], "the job's template is left as written"
