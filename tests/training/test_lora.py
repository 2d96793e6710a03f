"""Fine-tuning from an exported model with LoRA: only adapters train, export is merged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from kubetrain_trainer import data, lora, models, preprocess
from kubetrain_trainer.config import LoraConfig, TaskConfig
from kubetrain_trainer.evaluate import evaluate
from tests.training import harness
from tests.training.conftest import BASE_TASK, Trained


def test_lora_linear_starts_as_base_and_merges_exactly() -> None:
    torch.manual_seed(0)
    base = torch.nn.Linear(6, 4)
    adapted = lora.LoRALinear(base, rank=2, alpha=4.0)
    x = torch.randn(5, 6)
    assert torch.equal(adapted(x), base(x))
    with torch.no_grad():
        adapted.lora_b.normal_()
    assert not torch.allclose(adapted(x), base(x))
    assert torch.allclose(adapted.merged()(x), adapted(x), atol=1e-6)


def test_only_adapters_are_trainable() -> None:
    model = models.MLP(20, [16, 8], 3, dropout=0.0)
    targets = lora.apply(model, LoraConfig(rank=2, target_modules=["head"]))
    assert targets == ["head"]
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"head.lora_a", "head.lora_b"}


@pytest.mark.training
def test_finetune_with_lora_exports_merged_weights(
    trained_tabular: Trained, datasets: dict[str, Path], tmp_path: Path
) -> None:
    base_uri = trained_tabular.output / "model.safetensors"
    rank = 4
    task = {
        **BASE_TASK,
        "epochs": 3,
        "finetune": {
            "checkpointUri": f"file://{base_uri}",
            "lora": {"rank": rank, "alpha": 8, "targetModules": ["body.3", "head"]},
        },
    }
    output = tmp_path / "output"
    [pod] = harness.run(tmp_path, task, f"file://{datasets['tabular']}", f"file://{output}", job="lora")
    assert pod.process.returncode == 0, harness.describe([pod])

    card = json.loads((output / "model-card.json").read_text())
    assert card["model"]["loraTargets"] == ["body.3", "head"]
    assert card["model"]["finetunedFrom"] == f"file://{base_uri}"
    # body.3 is Linear(128, 64) and head Linear(64, 3): A is rank x in, B is out x rank.
    assert card["model"]["trainableParameters"] == rank * (128 + 64) + rank * (64 + 3)

    base, tuned = load_file(base_uri), load_file(output / "model.safetensors")
    assert tuned.keys() == base.keys(), "exported weights must be merged back into plain Linear layers"
    assert all(tuned[k].shape == base[k].shape for k in base)
    assert torch.equal(tuned["body.0.weight"], base["body.0.weight"]), "a frozen layer changed"
    assert torch.equal(tuned["head.bias"], base["head.bias"]), "a frozen bias changed"
    assert not torch.equal(tuned["head.weight"], base["head.weight"])
    assert not torch.equal(tuned["body.3.weight"], base["body.3.weight"])

    # The merged weights alone reproduce the reported test metrics in a plain model.
    config = TaskConfig.model_validate(task)
    prepared = preprocess.prepare(data.load(str(datasets["tabular"]), "tabular"), config)
    plain = models.build(config, prepared.input_shape, prepared.num_classes)
    plain.load_state_dict(tuned)
    metrics = evaluate(plain, *prepared.test, prepared.num_classes, torch.device("cpu"))
    assert metrics["accuracy"] == pytest.approx(card["metrics"]["accuracy"], abs=1e-6)
