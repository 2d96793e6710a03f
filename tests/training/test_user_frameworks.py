"""The SDK's framework integrations under the real frameworks, not stand-ins: a Hugging Face
`transformers.Trainer` fine-tuning a tiny randomly initialised BERT built here from its config
(no hub), and Ray Train's `TorchTrainer` with one worker. What each reports goes through the
trainer's status channel to a local HTTP server recording the status subresource's requests
(tests/fake_api.py: a request recorder, not a cluster), and the final report to a termination
message file, as in a pod."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from kubetrain_trainer import storage
from kubetrain_trainer.environment import JobEnvironment
from kubetrain_trainer.sdk.run import Run
from kubetrain_trainer.status import StatusReporter
from tests.fake_api import FakeApi, fake_api

VOCAB, LENGTH, MARKER = 32, 12, 7


@pytest.fixture
def api() -> Iterator[FakeApi]:
    with fake_api() as fake:
        yield fake


def reporting_run(api: FakeApi, tmp_path: Path) -> Run:
    """The run `sdk.init()` makes in a pod, with its reporter pointed at the recorder."""
    env = JobEnvironment.from_env({
        "KUBETRAIN_JOB_NAME": "hf-job", "KUBETRAIN_JOB_NAMESPACE": "team-a", "KUBETRAIN_JOB_UID": "u-1",
        "KUBETRAIN_TERMINATION_MESSAGE_PATH": str(tmp_path / "termination-log"),
    })
    return Run(env, StatusReporter(api.url, "team-a", "hf-job", lambda: "tok", interval_seconds=0), "hf/1")


class Sequences(torch.utils.data.Dataset[dict[str, torch.Tensor]]):
    """Token sequences labelled by whether they start with the marker token: learnable in a few steps."""

    def __init__(self, rows: int, seed: int) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.ids = torch.randint(MARKER + 1, VOCAB, (rows, LENGTH), generator=generator)
        self.labels = torch.randint(0, 2, (rows,), generator=generator)
        self.ids[self.labels == 1, 0] = MARKER

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        ids = self.ids[index]
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": self.labels[index]}


def accuracy(prediction: Any) -> dict[str, float]:
    return {"accuracy": float((np.argmax(prediction.predictions, axis=-1) == prediction.label_ids).mean())}


def test_a_transformers_trainer_reports_progress_checkpoints_and_final_metrics(api: FakeApi, tmp_path: Path) -> None:
    from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainingArguments

    from kubetrain_trainer.sdk.huggingface import KubetrainCallback

    torch.manual_seed(0)
    config = BertConfig(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=LENGTH, num_labels=2)
    run = reporting_run(api, tmp_path)
    output = tmp_path / "hf-output"
    arguments = TrainingArguments(
        output_dir=str(output), max_steps=24, per_device_train_batch_size=16, per_device_eval_batch_size=64,
        learning_rate=5e-3, logging_steps=2, eval_strategy="steps", eval_steps=12, save_strategy="steps",
        save_steps=12, report_to=[], use_cpu=True, disable_tqdm=True, seed=0,
    )
    trainer = Trainer(
        model=BertForSequenceClassification(config), args=arguments, train_dataset=Sequences(192, seed=0),
        eval_dataset=Sequences(64, seed=1), compute_metrics=accuracy, callbacks=[KubetrainCallback(run)],
    )
    trainer.train()
    run.finish(trainer.evaluate())

    statuses = [request.body["status"] for request in api.requests]
    steps = [s["progress"]["step"] for s in statuses if "progress" in s]
    assert steps == sorted(steps) and steps[-1] == 24, steps
    final = statuses[-1]
    progress = final["progress"]
    assert (progress["totalSteps"], progress["percent"]) == (24, 100.0), progress
    assert progress["trainLoss"] > 0 and "learning_rate" in progress["metrics"], progress
    assert {"eval_loss", "eval_accuracy"} <= set(progress["metrics"]), progress
    checkpoint = final["lastCheckpoint"]
    assert checkpoint["step"] == 24 and checkpoint["uri"] == str(output / "checkpoint-24"), checkpoint
    assert checkpoint["digest"] == storage.content_digest(str(output / "checkpoint-24"))
    assert any(s.get("lastCheckpoint", {}).get("step") == 12 for s in statuses), "the first save reached status"
    metrics = final["metrics"]
    assert metrics["eval_accuracy"] >= 0.8 and metrics["eval_loss"] > 0, metrics
    report = json.loads((tmp_path / "termination-log").read_text())
    assert report["outcome"] == "Succeeded" and report["metrics"] == metrics, report
