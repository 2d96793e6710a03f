"""Both sides of docs/contracts.md: what the operator renders into a worker pod is exactly what
the trainer reads, for every rank and every task type."""

from __future__ import annotations

from typing import Any

import pytest

from kubetrain.api import TrainingJob, default_catalogue
from kubetrain.render import RenderSettings, render_pytorch
from kubetrain_trainer.config import parse_task
from kubetrain_trainer.environment import JobEnvironment, Topology


def rendered_env(spec: dict[str, Any], index: int) -> dict[str, str]:
    job = TrainingJob.model_validate(
        {"metadata": {"name": "fraud", "namespace": "risk", "uid": "u-1"}, "spec": spec}
    )
    pod = render_pytorch(job, default_catalogue(), RenderSettings(default_image="img")).pods[index]
    return {e["name"]: e["value"] for e in pod["spec"]["containers"][0]["env"]}


SPEC = {
    "workers": 3,
    "nprocPerNode": 2,
    "nodePool": "a100-eu",
    "resources": {"gpus": 2},
    "dataset": {"uri": "file:///data/d.csv"},
    "output": {"uri": "file:///out/fraud"},
}


@pytest.mark.parametrize("index", [0, 1, 2])
def test_trainer_topology_matches_the_rendered_rank(index: int) -> None:
    env = rendered_env({**SPEC, "task": {"type": "tabular-classification"}}, index)
    topology = Topology.from_env(env)
    assert topology.world_size == 6
    assert topology.rank == index * 2
    assert topology.nproc_per_node == 2


@pytest.mark.parametrize("task_type", ["tabular-classification", "image-classification", "text-classification"])
def test_rendered_task_parses_in_the_trainer(task_type: str) -> None:
    task = {
        "type": task_type,
        "epochs": 2,
        "model": {"hiddenSizes": [8], "layers": 1, "dModel": 16, "heads": 2},
        "finetune": {"checkpointUri": "file:///m/model.safetensors", "lora": {"rank": 4}},
        "divergence": {"maxLoss": 50},
    }
    env = rendered_env({**SPEC, "task": task}, 0)
    parsed = parse_task(env["KUBETRAIN_TASK"])
    assert (parsed.type, parsed.epochs) == (task_type, 2)
    assert parsed.finetune is not None and parsed.finetune.lora is not None and parsed.finetune.lora.rank == 4
    job_env = JobEnvironment.from_env(env)
    assert (job_env.dataset_uri, job_env.output_uri) == ("file:///data/d.csv", "file:///out/fraud")
    assert (job_env.namespace, job_env.name, job_env.uid, job_env.attempt) == ("risk", "fraud", "u-1", 0)
