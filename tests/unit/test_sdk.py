"""The reporting SDK for users' code (kubetrain_trainer.sdk): what it sends to the status
subresource (a local HTTP server stands in for the API server), the final report the operator
parses, the model card, rank and no-operator behaviour, the profile, and the Hugging Face and Ray
Train integrations' logic on stand-ins for their framework objects (transformers is not in the
lock; Ray is, but a Ray Train run belongs in an end-to-end test)."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from kubetrain.plan.report import parse_report
from kubetrain_trainer import profile, storage
from kubetrain_trainer.environment import JobEnvironment
from kubetrain_trainer.errors import InvalidData
from kubetrain_trainer.sdk.huggingface import TrainerReporting
from kubetrain_trainer.sdk.raytrain import ReportForwarding, checkpoint_uri
from kubetrain_trainer.sdk.run import Run, inactive_reason, start
from kubetrain_trainer.status import StatusReporter
from tests.fake_api import FakeApi, fake_api
from tests.helpers import file_digest, wait_for


@pytest.fixture
def api() -> Iterator[FakeApi]:
    with fake_api() as fake:
        yield fake


def job_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        "KUBETRAIN_JOB_NAME": "churn",
        "KUBETRAIN_JOB_NAMESPACE": "team-a",
        "KUBETRAIN_JOB_UID": "u-1",
        "KUBETRAIN_DATASET_URI": f"file://{tmp_path / 'data.csv'}",
        "KUBETRAIN_DATASET_LICENSE": "CC-BY-4.0",
        "KUBETRAIN_DATASET_CONSENT_BASIS": "contract",
        "KUBETRAIN_TERMINATION_MESSAGE_PATH": str(tmp_path / "termination-log"),
        **extra,
    }


def active_run(api: FakeApi, tmp_path: Path) -> Run:
    reporter = StatusReporter(api.url, "team-a", "churn", lambda: "tok", interval_seconds=0)
    return Run(JobEnvironment.from_env(job_env(tmp_path)), reporter, code_version="v7")



def test_importing_the_sdk_imports_neither_torch_nor_a_kubernetes_client() -> None:
    heavy = ("torch", "numpy", "kubernetes", "transformers", "ray", "pydantic", "fsspec")
    probe = f"import sys, kubetrain_trainer.sdk; print([m for m in {heavy!r} if m in sys.modules])"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_outside_a_training_job_the_run_is_inactive_and_says_so_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    logging.getLogger("kubetrain_trainer").handlers.clear()
    run = start({})
    assert not run.active
    run.progress(1, total_steps=10, loss=0.5)
    run.checkpoint(str(tmp_path / "absent.pt"), 1)  # no digest is even attempted
    assert run.dataset("file:///absent") is None and run.export_model("file:///absent") is None
    run.finish({"accuracy": 1.0})
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [line["event"] for line in lines] == ["kubetrain_sdk_inactive"]
    assert "KUBETRAIN_JOB_NAME is unset" in lines[0]["reason"]


def test_only_global_rank_zero_reports(tmp_path: Path) -> None:
    assert inactive_reason({**job_env(tmp_path), "RANK": "0"}) is None
    assert inactive_reason({**job_env(tmp_path), "RANK": "3"}) == ""  # silent: rank 0 speaks for the job
    assert inactive_reason({"RANK": "1"}) == ""
    run = start({**job_env(tmp_path), "RANK": "1", "WORLD_SIZE": "2", "MASTER_ADDR": "h", "MASTER_PORT": "1"})
    run.finish({"accuracy": 1.0})
    assert not run.active and not (tmp_path / "termination-log").exists()


def test_a_run_reports_through_the_trainer_contract(api: FakeApi, tmp_path: Path) -> None:
    data = tmp_path / "data.csv"
    data.write_text("x,label\n1,a\n,b\n3,a\n")
    run = active_run(api, tmp_path)
    rows = [{"x": "1", "label": "a"}, {"x": "", "label": "b"}, {"x": "3", "label": "a"}]
    assert run.dataset(profile=profile.records(rows, label="label")) == file_digest(data)

    run.progress(1, total_steps=4, epoch=1, total_epochs=2, loss=0.9, metrics={"lr": 0.1, "note": "x"})  # type: ignore[dict-item]
    wait_for(lambda: len(api.requests) == 1, timeout=5, what="the progress update")
    ckpt = tmp_path / "ckpt-2.pt"
    ckpt.write_bytes(b"weights at 2")
    run.checkpoint(f"file://{ckpt}", 2)
    wait_for(lambda: len(api.requests) == 2, timeout=5, what="the checkpoint update")
    run.progress(4, total_steps=4, epoch=2, total_epochs=2, loss=0.4)
    wait_for(lambda: len(api.requests) == 3, timeout=5, what="the last progress update")
    weights = tmp_path / "model.pt"
    weights.write_bytes(b"final weights")
    assert run.export_model(f"file://{weights}", card={"name": "churn-mlp"}) == file_digest(weights)
    run.finish({"accuracy": 0.91234567, "loss": 0.3})

    first, checkpointed, last, final = (r.body["status"] for r in api.requests)
    assert first["progress"]["metrics"] == {"lr": 0.1} and first["progress"]["percent"] == 25.0
    assert "lastCheckpoint" not in first and "etaSeconds" not in first["progress"]
    # Every later write carries every trainer-owned field: server-side apply drops the others.
    assert checkpointed["lastCheckpoint"] == {**checkpointed["lastCheckpoint"], "step": 2, "digest": file_digest(ckpt)}
    assert last["lastCheckpoint"] == checkpointed["lastCheckpoint"] and last["progress"]["percent"] == 100.0
    assert last["progress"]["etaSeconds"] == 0 and last["progress"]["trainLoss"] == 0.4
    assert final["metrics"] == {"accuracy": 0.912346, "loss": 0.3}
    assert final["progress"]["step"] == 4 and final["lastCheckpoint"]["step"] == 2

    report = parse_report((tmp_path / "termination-log").read_text())
    assert report is not None and report.outcome == "Succeeded" and report.metrics == final["metrics"]
    produced = report.provenance
    assert produced is not None
    assert (produced.dataset_uri, produced.dataset_digest) == (f"file://{data}", file_digest(data))
    assert produced.dataset_profile is not None and produced.dataset_profile.missing_values == 1
    assert produced.dataset_profile.class_counts == {"a": 2, "b": 1}
    assert (produced.weights_digest, produced.code_version) == (file_digest(weights), "v7")
    assert produced.model_card_uri == f"file://{tmp_path / 'model-card.json'}"

    card = json.loads((tmp_path / "model-card.json").read_text())
    assert card["metrics"] == final["metrics"] and card["model"] == {"name": "churn-mlp"}
    assert card["data"] == {
        **card["data"], "license": "CC-BY-4.0", "consentBasis": "contract", "sha256": file_digest(data)
    }
    assert card["job"]["name"] == "churn" and card["codeVersion"] == "v7"


def test_an_exception_in_the_run_is_the_final_report(api: FakeApi, tmp_path: Path) -> None:
    with pytest.raises(InvalidData), active_run(api, tmp_path):
        raise InvalidData("data.csv: no rows")
    report = parse_report((tmp_path / "termination-log").read_text())
    assert report is not None and (report.outcome, report.reason) == ("Failed", "InvalidData") and report.permanent

    with pytest.raises(KeyError), active_run(api, tmp_path):
        raise KeyError("label")
    report = parse_report((tmp_path / "termination-log").read_text())
    assert report is not None and (report.reason, report.message) == ("TrainerError", "KeyError: 'label'")


def test_code_that_catches_sigterm_checkpoints_and_stops_as_failed(tmp_path: Path) -> None:
    """A script in its own process (SIGTERM is per process): with catch_sigterm it keeps running
    after SIGTERM until its loop sees stop_requested, checkpoints, and stop() ends it with exit
    code 1 and a TrainerError report naming the step and the checkpoint."""
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent(f"""
        import os, signal, sys
        from kubetrain_trainer import sdk
        with sdk.init(catch_sigterm=True) as run:
            for step in range(1, 1000):
                if step == 5:
                    os.kill(os.getpid(), signal.SIGTERM)  # still running after it
                if sdk.stop_requested():
                    open({str(tmp_path / "ckpt.pt")!r}, "w").write(str(step))
                    run.checkpoint("file://{tmp_path / "ckpt.pt"}", step)
                    sdk.stop(step)
        print("not reached")
    """))
    env = {**os.environ, **job_env(tmp_path), "KUBETRAIN_OUTPUT_URI": ""}
    env.pop("KUBERNETES_SERVICE_HOST", None)
    result = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and "not reached" not in result.stdout, result.stderr
    report = parse_report((tmp_path / "termination-log").read_text())
    assert report is not None and (report.outcome, report.reason) == ("Failed", "TrainerError")
    assert report.message == f"stopped on SIGTERM at step 5, after checkpoint file://{tmp_path / 'ckpt.pt'} (step 5)"
    assert not report.permanent


def test_a_directory_digest_is_its_manifest_without_the_card(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "sub" / "model.safetensors").write_bytes(b"w")
    manifest = "".join(
        f"{hashlib.sha256(content).hexdigest()}  {name}\n"
        for name, content in [("config.json", b"{}"), ("sub/model.safetensors", b"w")]
    )
    expected = "sha256:" + hashlib.sha256(manifest.encode()).hexdigest()
    assert storage.content_digest(str(tmp_path)) == expected
    (tmp_path / "model-card.json").write_text("{}")
    assert storage.content_digest(f"file://{tmp_path}", ignore=frozenset({"model-card.json"})) == expected


def test_profiles() -> None:
    assert profile.texts(["a b c", "", "d e"]) == {"rows": 3, "missingValues": 1, "tokens": 5}
    assert profile.texts(["abc"], tokenize=list)["tokens"] == 3
    table = profile.records([{"a": 1.0, "label": "x"}, {"a": float("nan"), "label": None}], label="label")
    assert table == {"rows": 2, "columns": 2, "missingValues": 2, "classes": 1, "balance": 1.0, "classCounts": {"x": 1}}
    many = profile.class_balance({str(i): i + 1 for i in range(profile.MAX_CLASSES + 1)})
    assert many == {"classes": profile.MAX_CLASSES + 1, "balance": round(1 / (profile.MAX_CLASSES + 1), 4)}


def test_hugging_face_callback_logic(api: FakeApi, tmp_path: Path) -> None:
    run = active_run(api, tmp_path)
    callback = TrainerReporting(run)
    args = SimpleNamespace(output_dir=str(tmp_path), num_train_epochs=3.0)
    state = SimpleNamespace(global_step=10, max_steps=40, epoch=0.75)
    callback.on_log(args, state, None, logs={"loss": 0.7, "learning_rate": 5e-5, "epoch": 0.75, "grad_norm": 1.5})
    wait_for(lambda: len(api.requests) == 1, timeout=5, what="the progress update")
    progress = api.requests[0].body["status"]["progress"]
    assert (progress["step"], progress["totalSteps"], progress["epoch"], progress["totalEpochs"]) == (10, 40, 1, 3)
    assert progress["trainLoss"] == 0.7 and progress["metrics"] == {"learning_rate": 5e-5, "grad_norm": 1.5}

    callback.on_evaluate(args, state, None, metrics={"eval_loss": 0.5, "eval_accuracy": 0.8, "epoch": 0.75})
    (tmp_path / "checkpoint-10").mkdir()
    (tmp_path / "checkpoint-10" / "model.safetensors").write_bytes(b"w")
    callback.on_save(args, state, None)
    wait_for(lambda: bool(api.requests) and "lastCheckpoint" in api.requests[-1].body["status"], timeout=5,
             what="the checkpoint update")
    status = api.requests[-1].body["status"]
    assert status["lastCheckpoint"]["uri"] == str(tmp_path / "checkpoint-10")
    assert status["lastCheckpoint"]["digest"] == storage.content_digest(str(tmp_path / "checkpoint-10"))
    assert status["progress"]["metrics"]["eval_accuracy"] == 0.8


def test_ray_train_reports_reach_status(api: FakeApi, tmp_path: Path) -> None:
    forwarding = ReportForwarding()
    restored = pickle.loads(pickle.dumps(forwarding))  # Ray ships the callback to its controller
    restored._run = active_run(api, tmp_path)
    ckpt = tmp_path / "checkpoint_000001"
    ckpt.mkdir()
    (ckpt / "state.pt").write_bytes(b"s")
    checkpoint: Any = SimpleNamespace(path=str(ckpt), filesystem=SimpleNamespace(type_name="local"))
    restored.after_report(None, [{"step": 7, "epoch": 2, "loss": 0.3, "accuracy": 0.9}, {"step": 7}], checkpoint)
    wait_for(lambda: bool(api.requests) and "lastCheckpoint" in api.requests[-1].body["status"], timeout=5,
             what="the checkpoint update")
    status = api.requests[-1].body["status"]
    assert status["progress"]["step"] == 7 and status["progress"]["metrics"] == {"accuracy": 0.9}
    assert status["lastCheckpoint"]["step"] == 7 and status["lastCheckpoint"]["uri"] == str(ckpt)
    remote: Any = SimpleNamespace(path="bucket/run/checkpoint_1", filesystem=SimpleNamespace(type_name="s3"))
    assert checkpoint_uri(remote) == "s3://bucket/run/checkpoint_1"
