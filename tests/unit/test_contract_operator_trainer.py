"""Both sides of docs/contracts.md: what the operator renders into a worker pod is exactly what
the trainer reads, for every rank and every task type."""

from __future__ import annotations

from typing import Any

import pytest

from kubetrain.api import TrainingJob, default_catalogue
from kubetrain.render import RenderSettings, render_pytorch
from kubetrain_trainer.config import parse_task
from kubetrain_trainer.environment import JobEnvironment, Topology


def rendered_env(spec: dict[str, Any], index: int, annotations: dict[str, str] | None = None) -> dict[str, str]:
    job = TrainingJob.model_validate(
        {"metadata": {"name": "fraud", "namespace": "risk", "uid": "u-1", "annotations": annotations or {}},
         "spec": spec}
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


@pytest.mark.parametrize(
    "task_type", ["tabular-classification", "image-classification", "text-classification", "causal-lm"]
)
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


def test_causal_lm_settings_reach_the_trainer_and_unset_ones_keep_its_defaults() -> None:
    task = {
        "type": "causal-lm",
        "finetune": {"checkpointUri": "hf://acme/base@main", "lora": {"rank": 16, "dropout": 0.1,
                                                                     "targetModules": ["q_proj", "v_proj"]}},
        "causalLm": {"objective": "text", "gradientAccumulationSteps": 4, "exportMerged": True},
    }
    parsed = parse_task(rendered_env({**SPEC, "task": task}, 0)["KUBETRAIN_TASK"])
    assert parsed.finetune is not None and parsed.finetune.lora is not None
    assert (parsed.finetune.lora.dropout, parsed.finetune.lora.target_modules) == (0.1, ["q_proj", "v_proj"])
    config = parsed.causal_lm
    assert (config.objective, config.gradient_accumulation_steps, config.export_merged) == ("text", 4, True)
    assert (config.sequence_length, config.schedule, config.packing) == (512, "cosine", True)


def test_causal_lm_without_a_base_model_is_refused_by_the_api_models() -> None:
    with pytest.raises(ValueError, match="finetune.checkpointUri is required for type causal-lm"):
        TrainingJob.model_validate({"metadata": {"name": "x"}, "spec": {**SPEC, "task": {"type": "causal-lm"}}})


def test_trainer_report_provenance_reaches_the_operator() -> None:
    from kubetrain.plan.report import parse_report
    from kubetrain_trainer.profile import labelled
    from kubetrain_trainer.termination import report

    provenance = {
        "datasetUri": "file:///data/d.csv",
        "datasetDigest": "sha256:" + "a" * 64,
        "datasetProfile": labelled(1000, {str(k): 50 for k in range(20)}),
        "weightsUri": "file:///out/model.safetensors",
        "weightsDigest": "sha256:" + "b" * 64,
        "modelCardUri": "file:///out/model-card.json",
        "codeVersion": "0.1.0",
        "exports": {"onnx": {"uri": "file:///out/model.onnx", "digest": "sha256:" + "c" * 64}},
    }
    text = report("Succeeded", "Completed", "x" * 5000, {"accuracy": 0.9}, "file:///out/model.safetensors", provenance)
    assert len(text.encode()) < 4096
    parsed = parse_report(text)
    assert parsed is not None and parsed.provenance is not None
    assert parsed.provenance.model_dump(by_alias=True, exclude_defaults=True) == provenance
    assert parsed.metrics == {"accuracy": 0.9}


def test_model_card_inputs_reach_the_trainer() -> None:
    spec = {**SPEC, "task": {"type": "tabular-classification"}}
    submitted = rendered_env(spec, 0, {"kubetrain.io/submitted-by": "alice@example.com"})
    job_env = JobEnvironment.from_env(submitted)
    assert (job_env.image, job_env.submitted_by) == ("img", "alice@example.com")
    anonymous = JobEnvironment.from_env(rendered_env({**spec, "image": "ghcr.io/acme/t:1"}, 0))
    assert (anonymous.image, anonymous.submitted_by) == ("ghcr.io/acme/t:1", None)


def test_model_documentation_reaches_the_model_card() -> None:
    model = {"name": "fraud", "intendedUse": "Flag card transactions for review.",
             "outOfScopeUse": "Declining payments without review.", "limitations": "Trained on EU traffic only."}
    job_env = JobEnvironment.from_env(rendered_env({**SPEC, "task": {"type": "tabular-classification"},
                                                    "model": model}, 0))
    assert job_env.model_docs() == model
    undocumented = JobEnvironment.from_env(rendered_env({**SPEC, "task": {"type": "tabular-classification"}}, 0))
    assert undocumented.model_docs() == {}


def test_export_formats_reach_the_trainer() -> None:
    env = rendered_env({**SPEC, "task": {"type": "image-classification", "exportFormats": ["onnx"]}}, 0)
    assert parse_task(env["KUBETRAIN_TASK"]).export_formats == ["onnx"]
    assert parse_task(rendered_env({**SPEC, "task": {"type": "image-classification"}}, 0)["KUBETRAIN_TASK"]
                      ).export_formats == []
