"""The causal-lm task with no hub: a toy Llama-style model with random weights and a word-level
tokenizer built here (kubetrain_trainer.llm.toy), fine-tuned by the real trainer in local
processes with the pod environment the operator renders. Loss falls, held-out perplexity and
exact match reach the final report, the LoRA adapter (and merged weights) are exported with the
digest the report names, DDP keeps ranks in sync in full fine-tuning on raw text, and a worker
stopped by SIGTERM checkpoints the step it is at and resumes from it."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch

from kubetrain.api.history import parse_history
from kubetrain_trainer import storage
from kubetrain_trainer.config import CausalLMConfig, TaskConfig
from kubetrain_trainer.llm import corpus, metrics, source, toy
from kubetrain_trainer.llm.loop import lr_factor
from tests.helpers import file_digest
from tests.training import harness

SFT_TASK: dict[str, Any] = {
    "type": "causal-lm",
    "epochs": 6,
    "batchSize": 4,
    "learningRate": 0.01,
    "seed": 0,
    "validationFraction": 0.1,
    "testFraction": 0.1,
    "checkpointEverySteps": 20,
    "progressIntervalSeconds": 0,
    "finetune": {"lora": {"rank": 8, "alpha": 16, "dropout": 0.05}},
    "causalLm": {"sequenceLength": 32, "warmupSteps": 5, "exportMerged": True, "generationExamples": 12,
                 "maxNewTokens": 3},
}


@dataclass(frozen=True)
class Inputs:
    model: Path
    instructions: Path
    text: Path


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Inputs:
    root = tmp_path_factory.mktemp("causal-lm")
    (root / "facts.jsonl").write_text(toy.instructions(300, seed=0))
    (root / "facts.txt").write_text(toy.text(200, seed=0))
    return Inputs(toy.write_model(root / "toy-llama"), root / "facts.jsonl", root / "facts.txt")


def task_for(inputs: Inputs, base: dict[str, Any] = SFT_TASK, **changes: Any) -> dict[str, Any]:
    finetune = {**base["finetune"], "checkpointUri": f"file://{inputs.model}"}
    return {**base, "finetune": finetune, **changes}


@dataclass(frozen=True)
class Run:
    pod: harness.Pod
    output: Path
    report: dict[str, Any]
    card: dict[str, Any]


@pytest.fixture(scope="module")
def sft(inputs: Inputs, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    workdir = tmp_path_factory.mktemp("sft-run")
    output = workdir / "output"
    [pod] = harness.run(workdir, task_for(inputs), f"file://{inputs.instructions}", f"file://{output}", job="sft")
    assert pod.process.returncode == 0, harness.describe([pod])
    report = pod.report()
    assert report is not None
    yield Run(pod, output, report, json.loads((output / "model-card.json").read_text()))


# Pure pieces: no trainer process.


def test_instruction_loss_is_on_the_response_only() -> None:
    tokenizer = toy.tokenizer()
    encoded = corpus.encode(tokenizer, corpus.Record(prompt="what colour is the lime ?", response="green"))
    labelled = [tokenizer.convert_ids_to_tokens(t) for t in encoded.labels if t != corpus.IGNORE]  # type: ignore[attr-defined]
    assert labelled == ["green", "</s>"]
    assert tokenizer.convert_ids_to_tokens(encoded.ids[: len(encoded.ids) - 2]) == [  # type: ignore[attr-defined]
        "<|user|>", "what", "colour", "is", "the", "lime", "?", "<|assistant|>"
    ]


def test_packing_fills_whole_sequences_and_padding_takes_no_loss() -> None:
    tokenizer = toy.tokenizer()
    records = [corpus.Record(prompt="what colour is the fig ?", response="purple")] * 10  # 10 tokens each
    packed = corpus.batches(tokenizer, records, CausalLMConfig(sequence_length=16, packing=True))
    assert packed.input_ids.shape == (7, 16) and int(packed.attention_mask.sum()) == 100
    single = corpus.batches(tokenizer, records, CausalLMConfig(sequence_length=16, packing=False))
    assert single.input_ids.shape == (10, 10)
    assert bool((packed.labels[packed.attention_mask == 0] == corpus.IGNORE).all())


def test_schedule_warms_up_then_decays() -> None:
    config = CausalLMConfig(warmup_steps=4, schedule="cosine")
    factors = [lr_factor(step, 20, config) for step in range(20)]
    assert factors[:4] == [0.25, 0.5, 0.75, 1.0]
    assert all(a >= b for a, b in zip(factors[4:], factors[5:], strict=False)) and factors[-1] < 0.05
    assert lr_factor(19, 20, CausalLMConfig(schedule="linear")) == pytest.approx(0.05)
    assert lr_factor(19, 20, CausalLMConfig(schedule="constant")) == 1.0


def test_rouge_l_and_exact_match_normalisation() -> None:
    assert metrics.rouge_l("the red apple", "a red apple") == pytest.approx(2 / 3)
    assert metrics.rouge_l("", "red") == 0.0
    assert metrics.normalise(" Red  ") == metrics.normalise("red")


def test_the_base_model_names_its_licence_and_pvc_uris_are_mounted_claims(inputs: Inputs) -> None:
    base = source.resolve(f"file://{inputs.model}")
    assert base.license == toy.LICENSE
    assert base.digest == storage.content_digest(str(inputs.model))
    assert source.resolve(f"file://{inputs.model}", "llama3").license == "llama3"
    assert storage.local_path("pvc://models/llama/8b") == Path("/mnt/pvc/models/llama/8b")


def test_causal_lm_without_a_base_model_is_refused() -> None:
    with pytest.raises(ValueError, match="causal-lm needs finetune.checkpointUri"):
        TaskConfig.model_validate({"type": "causal-lm"})


# The real trainer.


@pytest.mark.training
def test_loss_falls_and_held_out_metrics_reach_the_report(sft: Run) -> None:
    assert sft.report["outcome"] == "Succeeded", sft.report
    epochs = sft.pod.events("epoch_finished")
    assert len(epochs) == SFT_TASK["epochs"]
    assert epochs[-1]["train_loss"] < 0.6 * epochs[0]["train_loss"], epochs
    assert epochs[-1]["validation_perplexity"] < epochs[0]["validation_perplexity"]
    scores = sft.report["metrics"]
    assert set(scores) == {"loss", "perplexity", "exactMatch", "rougeL"}
    # A random model over this vocabulary is near perplexity 50; the facts are learnt well below it.
    assert scores["perplexity"] < 5.0, scores
    assert 0.0 <= scores["exactMatch"] <= scores["rougeL"] <= 1.0, scores
    assert sft.report["message"].startswith("test perplexity")


@pytest.mark.training
def test_the_history_holds_the_token_loss_and_validation_perplexity(sft: Run) -> None:
    records = parse_history((sft.output / "metrics.jsonl").read_text())
    validation = [r.metrics for r in records if r.phase == "validation"]
    assert [round(v["perplexity"], 4) for v in validation] == [
        e["validation_perplexity"] for e in sft.pod.events("epoch_finished")
    ]
    assert [r.metrics for r in records if r.phase == "test"] == [sft.report["metrics"]]
    assert {r.phase for r in records} == {"train", "validation", "test"}
    assert sft.card["history"]["curves"]["path"] == "curves.png" and (sft.output / "curves.png").stat().st_size
    assert (sft.output / "logs" / "rank-0.log").read_text().splitlines()[-1].endswith('"exit_code": 0}')


@pytest.mark.training
def test_adapter_and_merged_weights_are_exported_with_their_digests(sft: Run, inputs: Inputs) -> None:
    adapter = sft.output / "adapter"
    assert {"adapter_model.safetensors", "adapter_config.json", "tokenizer.json"} <= {p.name for p in adapter.iterdir()}
    digest = storage.content_digest(str(adapter))
    provenance = sft.report["provenance"]
    assert provenance["weightsUri"] == sft.report["modelUri"] == f"file://{adapter}"
    assert provenance["weightsDigest"] == digest
    assert provenance["datasetDigest"] == file_digest(inputs.instructions)
    assert provenance["datasetProfile"]["rows"] == 300 and provenance["datasetProfile"]["tokens"] > 0
    card = sft.card
    assert card["baseModel"] == {
        "uri": f"file://{inputs.model}", "digest": storage.content_digest(str(inputs.model)), "license": toy.LICENSE,
    }
    assert card["data"]["sha256"] == provenance["datasetDigest"].removeprefix("sha256:")
    assert card["hyperparameters"]["method"] == "lora"
    assert card["hyperparameters"]["lora"]["rank"] == 8 and card["hyperparameters"]["lora"]["dropout"] == 0.05
    assert card["exports"]["merged"]["sha256"] == storage.content_digest(str(sft.output / "merged")).removeprefix(
        "sha256:"
    )
    assert card["metrics"] == sft.report["metrics"]


@pytest.mark.training
def test_merged_weights_answer_as_base_plus_adapter(sft: Run, inputs: Inputs) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(sft.output / "merged")
    assert tokenizer.chat_template == toy.CHAT_TEMPLATE
    merged = AutoModelForCausalLM.from_pretrained(sft.output / "merged").eval()
    adapted = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(inputs.model), sft.output / "adapter")
    ids = tokenizer("<|user|> what colour is the lime ? <|assistant|>", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        assert torch.allclose(merged(ids).logits, adapted.eval()(ids).logits, atol=1e-4)


@pytest.mark.training
def test_the_generative_predictor_reproduces_the_held_out_answers(sft: Run, tmp_path: Path) -> None:
    """Base + adapter loaded back from the card answer the run's own test prompts as the run did:
    exactMatch and rougeL are reproduced exactly; the `predict` command answers prompts alike."""
    from kubetrain_trainer.predict import load

    predictor = load(str(sft.output), sft.report["provenance"]["weightsDigest"])
    scores = predictor.evaluate()
    assert scores == {k: sft.report["metrics"][k] for k in ("exactMatch", "rougeL")}
    assert sft.report["provenance"]["exports"]["merged"]["digest"] == storage.content_digest(str(sft.output / "merged"))
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text('"what colour is the lime ?"\n{"prompt": "what colour is the lime ?"}\n')
    result = subprocess.run(
        [sys.executable, "-m", "kubetrain_trainer", "predict", "--model", str(sft.output / "model-card.json"),
         "--input", str(prompts)],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    answers = [json.loads(line) for line in result.stdout.splitlines()]
    assert answers == [g.model_dump() for g in predictor.predict(["what colour is the lime ?"] * 2)]
    assert "Input and output" in (sft.output / "model-card.md").read_text()


@pytest.mark.training
def test_full_fine_tuning_on_raw_text_over_two_ddp_workers(inputs: Inputs, tmp_path: Path) -> None:
    task = task_for(inputs, epochs=3, learningRate=0.003, finetune={"checkpointUri": f"file://{inputs.model}"},
                    causalLm={"objective": "text", "sequenceLength": 32, "gradientAccumulationSteps": 2})
    output = tmp_path / "output"
    pods = harness.run(tmp_path, task, f"file://{inputs.text}", f"file://{output}", workers=2, job="cpt", timeout=240)
    assert [p.process.returncode for p in pods] == [0, 0], harness.describe(pods)
    card = json.loads((output / "model-card.json").read_text())
    assert card["hyperparameters"]["method"] == "full"
    assert card["hyperparameters"]["effectiveBatchSize"] == 4 * 2 * 2
    digests = card["training"]["parameterDigests"]
    assert len(digests) == 2 and digests[0] == digests[1], "DDP let the ranks' weights drift apart"
    assert (output / "model" / "model.safetensors").is_file()
    assert set(pods[0].report()["metrics"]) == {"loss", "perplexity"}  # type: ignore[index]
    epochs = pods[0].events("epoch_finished")
    assert epochs[-1]["train_loss"] < epochs[0]["train_loss"]


@pytest.mark.training
def test_sigterm_checkpoints_the_step_it_stops_at_and_the_next_attempt_resumes_there(
    inputs: Inputs, tmp_path: Path
) -> None:
    """A preemption or a drain: SIGTERM mid-training, between periodic checkpoints. The trainer
    checkpoints the step it stops at (the next loss check), exits as failed with that step in its
    report, and the next attempt resumes exactly there."""
    task = task_for(inputs, epochs=15, checkpointEverySteps=10)
    dataset, output = f"file://{inputs.instructions}", tmp_path / "output"
    [first] = harness.start(tmp_path, task, dataset, f"file://{output}", attempt=0, job="llm-resume")
    try:
        harness.wait_for_checkpoint(output, at_least_step=20, timeout=150)
    finally:
        first.process.send_signal(signal.SIGTERM)
    assert harness.wait([first]) == [1], harness.describe([first])
    assert not (output / "model-card.json").exists(), "the first attempt finished before it got SIGTERM"
    [stopped] = first.events("stopped_on_sigterm")
    latest = int((output / "checkpoints" / "latest").read_text().strip().removeprefix("step-").removesuffix(".pt"))
    assert latest == stopped["step"]
    report = first.report()
    assert report is not None and f"stopped on SIGTERM at step {latest}" in report["message"]
    [second] = harness.run(tmp_path, task, dataset, f"file://{output}", attempt=1, job="llm-resume", timeout=240)
    assert second.process.returncode == 0, harness.describe([second])
    [resumed] = second.events("resumed")
    assert resumed["step"] == latest
    card = json.loads((output / "model-card.json").read_text())
    assert card["training"]["resumedFromStep"] == latest
    # Progress continues from the checkpoint, not from step 1: at the first loss check after it (every
    # divergence.checkEverySteps = 10 steps, or an epoch's end if that comes first).
    assert latest < second.events("progress")[0]["step"] <= latest + 10
    # Adapter-only checkpoints: the frozen base model is read again from its own URI.
    blob = torch.load(output / "checkpoints" / f"step-{card['training']['steps']}.pt", weights_only=False)
    assert blob["model"] and all("lora_" in name for name in blob["model"])
