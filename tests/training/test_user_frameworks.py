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
from kubetrain_trainer.sdk.run import Run, start
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


def ray_train_function(config: dict[str, Any]) -> None:
    """A user's Ray Train loop: a logistic regression, one report with a checkpoint per epoch."""
    import tempfile

    import ray.train

    torch.manual_seed(0)
    x = torch.randn(256, 4)
    y = (x[:, 0] + x[:, 1] > 0).long()
    model = torch.nn.Linear(4, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    for epoch in range(1, config["epochs"] + 1):
        loss = torch.nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        accuracy = float((model(x).argmax(1) == y).float().mean())
        with tempfile.TemporaryDirectory() as directory:
            torch.save(model.state_dict(), Path(directory) / "model.pt")
            ray.train.report({"step": epoch, "epoch": epoch, "loss": loss.item(), "accuracy": accuracy},
                             checkpoint=ray.train.Checkpoint.from_directory(directory))


def test_a_ray_train_run_reports_each_report_and_the_checkpoint(tmp_path: Path) -> None:
    """Ray Train's controller, a process of Ray's own, calls the callback, which starts its run
    from the pod's environment (given to every Ray process as the head pod's would be) and writes
    to the API server named there; the driver's `sdk.finish` writes the final report."""
    import ray
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from kubetrain_trainer.sdk.raytrain import KubetrainRayCallback

    with fake_api(service_account_dir=tmp_path / "serviceaccount") as api:
        env = {"KUBETRAIN_JOB_NAME": "ray-job", "KUBETRAIN_JOB_NAMESPACE": "team-a", "KUBETRAIN_JOB_UID": "u-2",
               "KUBETRAIN_TERMINATION_MESSAGE_PATH": str(tmp_path / "termination-log"), **api.pod_env()}
        ray.init(num_cpus=2, include_dashboard=False, runtime_env={"env_vars": env})
        try:
            trainer = TorchTrainer(
                ray_train_function, train_loop_config={"epochs": 3},
                scaling_config=ScalingConfig(num_workers=1, use_gpu=False),
                run_config=RunConfig(storage_path=str(tmp_path / "ray"), name="run",
                                     callbacks=[KubetrainRayCallback()]),
            )
            result = trainer.fit()
        finally:
            ray.shutdown()
        driver = start(env=env)  # the driver's run, from the same pod environment
        driver.finish(result.metrics)

    statuses = [request.body["status"] for request in api.requests]
    assert all(r.headers["Authorization"] == "Bearer fake-token" for r in api.requests)
    reported = [s for s in statuses if "lastCheckpoint" in s]
    assert [s["lastCheckpoint"]["step"] for s in reported] == [1, 2, 3], statuses
    last = reported[-1]
    assert last["progress"]["step"] == 3 and last["progress"]["trainLoss"] > 0, last
    assert last["progress"]["metrics"]["accuracy"] >= 0.85, last
    checkpoint = last["lastCheckpoint"]
    assert checkpoint["uri"] == result.checkpoint.path, (checkpoint, result.checkpoint)
    assert checkpoint["digest"] == storage.content_digest(result.checkpoint.path)
    assert statuses[-1]["metrics"] == {key: round(float(value), 6) for key, value in result.metrics.items()}
    report = json.loads((tmp_path / "termination-log").read_text())
    assert report["outcome"] == "Succeeded" and report["metrics"]["accuracy"] >= 0.85, report
