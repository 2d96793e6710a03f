"""The TrainingJob models: defaults, bounds, and refusals that name the field and the fix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from kubetrain.api import (
    CleanPodPolicy,
    NodePoolCatalogue,
    Runtime,
    TaskType,
    TrainingJob,
    TrainingJobSpec,
    default_catalogue,
    load_catalogue,
)
from kubetrain.api.budget import BudgetPolicy
from kubetrain.api.registry import Model, ModelVersion
from kubetrain.api.residency import DataResidencyPolicy
from kubetrain.api.schedule import TrainingSchedule

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "pytorch-ddp.yaml"


def minimal_spec(**overrides: Any) -> dict[str, Any]:
    return {
        "task": {"type": "tabular-classification"},
        "dataset": {"uri": "file:///data/t.csv"},
        "output": {"uri": "pvc://claim/out"},
        **overrides,
    }


def test_defaults_fill_every_optional_field() -> None:
    spec = TrainingJobSpec.model_validate(minimal_spec())
    assert spec.runtime == Runtime.PYTORCH
    assert (spec.workers, spec.nproc_per_node, spec.resources.gpus) == (1, 1, 0)
    assert spec.image is None and spec.command is None and spec.node_pool is None
    task = spec.task
    assert task is not None
    assert (task.epochs, task.batch_size, task.learning_rate, task.seed) == (5, 64, 1e-3, 0)
    assert (task.validation_fraction, task.test_fraction) == (0.1, 0.2)
    assert (task.checkpoint_every_steps, task.progress_interval_seconds) == (50, 10)
    policy = spec.run_policy
    assert (policy.backoff_limit, policy.suspend, policy.clean_pod_policy) == (3, False, CleanPodPolicy.RUNNING)
    assert policy.active_deadline_seconds is None and policy.ttl_seconds_after_finished is None


def test_camel_case_on_the_wire_and_snake_case_in_python() -> None:
    spec = TrainingJobSpec.model_validate(minimal_spec(nprocPerNode=4, runPolicy={"backoffLimit": 0}))
    assert spec.nproc_per_node == 4 and spec.run_policy.backoff_limit == 0
    assert TrainingJobSpec(**minimal_spec(nproc_per_node=2)).nproc_per_node == 2
    dumped = spec.to_k8s()
    assert dumped["nprocPerNode"] == 4 and dumped["runPolicy"]["backoffLimit"] == 0
    assert "image" not in dumped, "unset optionals are left out"


def test_quantities_accept_integers_like_a_pod_spec() -> None:
    spec = TrainingJobSpec.model_validate(minimal_spec(resources={"cpu": 4, "memory": "16Gi"}))
    assert spec.resources.cpu == "4" and spec.resources.memory == "16Gi"


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"workers": 0}, "workers"),
        ({"nprocPerNode": 0}, "nprocPerNode"),
        ({"runtime": "tensorflow"}, "runtime"),
        ({"resources": {"gpus": -1}}, "gpus"),
        ({"resources": {"cpu": "four"}}, "cpu"),
        ({"runPolicy": {"backoffLimit": -1}}, "backoffLimit"),
        ({"runPolicy": {"activeDeadlineSeconds": 0}}, "activeDeadlineSeconds"),
        ({"runPolicy": {"cleanPodPolicy": "Some"}}, "cleanPodPolicy"),
        ({"dataset": {"uri": "/no/scheme.csv"}}, "uri"),
        ({"output": {"uri": "ftp://host/x"}}, "uri"),
        ({"task": {"type": "regression"}}, "type"),
        ({"task": {"type": "tabular-classification", "epochs": 0}}, "epochs"),
        ({"task": {"type": "tabular-classification", "learningRate": 0}}, "learningRate"),
        ({"task": {"type": "tabular-classification", "validationFraction": 0.5, "testFraction": 0.4}}, "0.9"),
        ({"task": {"type": "tabular-classification", "model": {"dModel": 4}}}, "dModel"),
        ({"task": {"type": "tabular-classification", "finetune": {"checkpointUri": ""}}}, "checkpointUri"),
        ({"env": [{"name": "1BAD", "value": "x"}]}, "name"),
        ({"workerz": 2}, "workerz"),
    ],
)
def test_invalid_values_are_refused_naming_the_field(overrides: dict[str, Any], expected: str) -> None:
    with pytest.raises(ValidationError) as error:
        TrainingJobSpec.model_validate(minimal_spec(**overrides))
    assert expected in str(error.value)


@pytest.mark.parametrize(
    "name", ["KUBETRAIN_TASK", "KUBETRAIN_ANYTHING", "MASTER_ADDR", "RANK", "WORLD_SIZE", "LOCAL_RANK", "PET_NNODES"]
)
def test_env_vars_owned_by_the_operator_are_refused(name: str) -> None:
    with pytest.raises(ValidationError, match="set by the operator"):
        TrainingJobSpec.model_validate(minimal_spec(env=[{"name": name, "value": "1"}]))


def test_user_env_vars_are_accepted() -> None:
    spec = TrainingJobSpec.model_validate(minimal_spec(env=[{"name": "NCCL_DEBUG", "value": "INFO"}]))
    assert spec.env[0].name == "NCCL_DEBUG"


def test_task_is_required_unless_a_command_is_given() -> None:
    with pytest.raises(ValidationError, match="spec.task is required unless spec.command is set"):
        TrainingJobSpec.model_validate(minimal_spec(task=None))
    spec = TrainingJobSpec.model_validate(minimal_spec(task=None, command=["python", "train.py"]))
    assert spec.task is None


def test_gpus_need_a_node_pool() -> None:
    with pytest.raises(ValidationError, match="spec.nodePool is required when spec.resources.gpus > 0"):
        TrainingJobSpec.model_validate(minimal_spec(resources={"gpus": 1}))


def test_task_types() -> None:
    assert [t.value for t in TaskType] == [
        "tabular-classification", "image-classification", "text-classification", "causal-lm"
    ]


def test_example_validates() -> None:
    job = TrainingJob.model_validate(yaml.safe_load(EXAMPLE.read_text()))
    assert job.metadata.name == "pytorch-ddp"
    assert (job.spec.workers, job.spec.resources.gpus, job.spec.node_pool) == (2, 1, "a100-eu")
    assert job.spec.task is not None and job.spec.task.type == TaskType.TABULAR_CLASSIFICATION
    assert job.spec.run_policy.backoff_limit == 3
    assert job.status.phase == "Pending" and job.status.restarts == 0


def test_server_metadata_and_status_parse() -> None:
    raw = yaml.safe_load(EXAMPLE.read_text())
    raw["metadata"].update(uid="u", generation=3, resourceVersion="7", managedFields=[{"manager": "kubectl"}])
    raw["status"] = {
        "phase": "Running",
        "restarts": 1,
        "conditions": [
            {
                "type": "Running",
                "status": "True",
                "reason": "AllWorkersRunning",
                "lastTransitionTime": "2025-01-01T00:00:00Z",
            }
        ],
        "progress": {"epoch": 2, "percent": 40.0, "futureField": 1},
        "metrics": {"accuracy": 0.9},
    }
    job = TrainingJob.model_validate(raw)
    assert job.metadata.generation == 3 and job.status.restarts == 1
    assert job.status.progress is not None and job.status.progress.percent == 40.0


def test_default_catalogue_matches_the_dev_cluster() -> None:
    pools = default_catalogue().pools
    assert sorted(pools) == ["a100-eu", "cpu", "h100-us", "local"]
    a100, h100, cpu, local = pools["a100-eu"], pools["h100-us"], pools["cpu"], pools["local"]
    assert (a100.region, a100.gpus_per_node, a100.gpu_product) == ("eu-west-1", 8, "NVIDIA-A100-SXM4-80GB")
    assert (h100.region, h100.gpus_per_node, h100.gpu_product) == ("us-east-1", 8, "NVIDIA-H100-80GB-HBM3")
    assert a100.node_selector == {"kubetrain.io/node-pool": "a100-eu"}
    assert [t.to_k8s() for t in h100.tolerations] == [
        {"key": "nvidia.com/gpu", "operator": "Equal", "value": "present", "effect": "NoSchedule"}
    ]
    assert cpu.gpus_per_node == 0 and not cpu.tolerations and cpu.region is None
    assert local.node_selector == {"kubetrain.io/node-pool": "local"} and local.gpus_per_node == 0
    assert [t.to_k8s() for t in local.tolerations] == [
        {"key": "kubetrain.io/local", "operator": "Equal", "value": "true", "effect": "NoSchedule"}
    ]


def test_catalogue_loads_from_yaml() -> None:
    document = yaml.safe_load(
        """
pools:
  l4:
    nodeSelector: {cloud.google.com/gke-accelerator: nvidia-l4}
    tolerations: [{key: nvidia.com/gpu, operator: Exists, effect: NoSchedule}]
    gpusPerNode: 4
    region: europe-west4
"""
    )
    catalogue = load_catalogue(document)
    assert isinstance(catalogue, NodePoolCatalogue)
    pool = catalogue.pools["l4"]
    assert pool.gpus_per_node == 4 and pool.gpu_resource == "nvidia.com/gpu"
    assert pool.tolerations[0].to_k8s() == {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    with pytest.raises(ValidationError, match="gpusPerNode"):
        load_catalogue({"pools": {"x": {"nodeSelector": {}, "gpusPerNode": -1}}})


@pytest.mark.parametrize(
    "model", [TrainingJob, DataResidencyPolicy, BudgetPolicy, Model, ModelVersion, TrainingSchedule]
)
def test_each_resource_model_declares_the_identity_its_api_info_gives_the_client_and_the_crds(model: Any) -> None:
    info = model.api_info
    assert model.model_fields["kind"].default == info.kind
    assert model.model_fields["api_version"].default == f"{info.group}/{info.version}"
