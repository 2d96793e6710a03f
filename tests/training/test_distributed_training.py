"""Two (or more) real DDP processes over gloo: accuracy, artifacts, resume after a kill, and
divergence that stops every rank."""

from __future__ import annotations

import hashlib
import json
import signal
from pathlib import Path

import pytest
from safetensors.torch import load_file

from tests.helpers import wait_for
from tests.training import harness
from tests.training.conftest import ACCURACY_BAR, BASE_TASK, TABULAR_ROWS, Trained

pytestmark = pytest.mark.training


def test_two_workers_beat_the_accuracy_bar_and_report_it(trained_tabular: Trained) -> None:
    pods = trained_tabular.pods
    assert [p.process.returncode for p in pods] == [0, 0], harness.describe(pods)
    report = pods[0].report()
    assert report is not None and report["outcome"] == "Succeeded", harness.describe(pods)
    assert report["metrics"]["accuracy"] >= ACCURACY_BAR
    assert set(report["metrics"]) == {"loss", "accuracy", "precision", "recall", "f1"}
    assert report["modelUri"].endswith("/model.safetensors")
    assert len(json.dumps(report).encode()) < 4096
    # Only rank 0 reports on success (docs/contracts.md).
    assert pods[1].report() is None
    # Both ranks trained: rank 1 logged its epochs too, and every log line names job and rank.
    assert len(pods[1].events("epoch_finished")) == BASE_TASK["epochs"]
    assert {(e["job"], e["rank"]) for e in pods[1].events()} == {("training-tests/tabular", 1)}


def test_ranks_end_with_identical_parameters(trained_tabular: Trained) -> None:
    """Accuracy comes from rank 0 alone: two ranks training independently would pass every other
    test. Each rank logs its own parameters digest; DDP must leave them equal, and the card holds
    the gathered list."""
    [digest_0] = [e["sha256"] for e in trained_tabular.pods[0].events("parameters_digest")]
    [digest_1] = [e["sha256"] for e in trained_tabular.pods[1].events("parameters_digest")]
    assert digest_0 == digest_1, "the ranks' parameters diverged: gradients were not synchronised"
    card = json.loads((trained_tabular.output / "model-card.json").read_text())
    assert card["training"]["parameterDigests"] == [digest_0, digest_1]


def test_artifacts_weights_card_and_checkpoint(trained_tabular: Trained, datasets: dict[str, Path]) -> None:
    output = trained_tabular.output
    weights = load_file(output / "model.safetensors")
    hidden = BASE_TASK["model"]["hiddenSizes"]
    assert weights["body.0.weight"].shape == (hidden[0], 20)
    assert weights["body.3.weight"].shape == (hidden[1], hidden[0])
    assert weights["head.weight"].shape == (3, hidden[1])

    card = json.loads((output / "model-card.json").read_text())
    assert card["data"]["sha256"] == hashlib.sha256(datasets["tabular"].read_bytes()).hexdigest()
    assert card["data"]["rows"] == TABULAR_ROWS
    assert sum(card["data"]["classCounts"].values()) == TABULAR_ROWS
    assert card["weights"]["sha256"] == hashlib.sha256((output / "model.safetensors").read_bytes()).hexdigest()
    assert card["config"]["batchSize"] == BASE_TASK["batchSize"] and card["config"]["divergence"] == {
        "maxLoss": None,
        "checkEverySteps": 10,
    }
    assert card["metrics"] == trained_tabular.pods[0].report()["metrics"]
    assert card["training"]["worldSize"] == 2
    assert card["training"]["steps"] == card["training"]["totalSteps"] > 0
    assert card["startTime"] <= card["endTime"]
    assert card["software"]["torch"] and card["trainerVersion"]

    latest = (output / "checkpoints" / "latest").read_text().strip()
    assert latest == f"step-{card['training']['totalSteps']}.pt"
    assert (output / "checkpoints" / latest).stat().st_size > 0
    assert not list((output / "checkpoints").glob(".*.tmp")), "temporary checkpoint files left behind"


def test_killed_workers_resume_from_the_latest_checkpoint(datasets: dict[str, Path], tmp_path: Path) -> None:
    task = {**BASE_TASK, "epochs": 30, "checkpointEverySteps": 50, "validationFraction": 0.0}
    output = tmp_path / "output"
    dataset, out_uri = f"file://{datasets['tabular']}", f"file://{output}"
    first = harness.start(tmp_path, task, dataset, out_uri, workers=2, attempt=0, job="resume")
    try:
        killed_at = harness.wait_for_checkpoint(output, at_least_step=150)
    finally:
        for pod in first:
            pod.process.kill()
    harness.wait(first)
    card_before_restart = (output / "model-card.json").exists()
    latest_after_kill = int((output / "checkpoints" / "latest").read_text().strip()[len("step-") : -len(".pt")])
    assert latest_after_kill >= killed_at
    assert not card_before_restart, "the first attempt finished before it could be killed; the test proves nothing"

    second = harness.run(tmp_path, task, dataset, out_uri, workers=2, attempt=1, job="resume")
    assert [p.process.returncode for p in second] == [0, 0], harness.describe(second)
    for pod in second:
        [resumed] = pod.events("resumed")
        assert resumed["step"] == latest_after_kill
        [started] = pod.events("training_started")
        assert started["step"] == latest_after_kill > 0
    card = json.loads((output / "model-card.json").read_text())
    assert card["training"]["resumedFromStep"] == latest_after_kill
    # 1600 training rows (no validation split), 800 per rank, 25 batches of 32 per epoch.
    assert card["training"]["steps"] == card["training"]["totalSteps"] == 30 * 25
    # The resumed run's first logged progress continues from the checkpoint instead of step 1: at
    # the first divergence check after it (every 10 steps by default; checkpoints, every 100, are
    # on that cadence).
    first_progress = second[0].events("progress")[0]
    assert first_progress["step"] == latest_after_kill + 10
    assert second[0].report()["metrics"]["accuracy"] >= ACCURACY_BAR


def test_divergence_fails_fast_on_every_rank(datasets: dict[str, Path], tmp_path: Path) -> None:
    # A learning rate this large overflows the weights within a few Adam steps, so the loss goes
    # non-finite; 200 epochs are 5,000 steps, so a stop within the first 100 is the verdict at work
    # (counted in steps: the processes' start-up time on a loaded machine is no part of it).
    task = {**BASE_TASK, "epochs": 200, "learningRate": 1e30}
    pods = harness.run(
        tmp_path, task, f"file://{datasets['tabular']}", f"file://{tmp_path / 'output'}", workers=2, job="nan"
    )
    stopped_at = set()
    for pod in pods:
        assert pod.process.returncode != 0, harness.describe(pods)
        report = pod.report()
        assert report is not None and report["outcome"] == "Failed"
        assert report["reason"] == "Diverged", report
        assert "NaN/inf" in report["message"]
        [failed] = pod.events("failed")
        stopped_at.add(int(failed["message"].rsplit(" ", 1)[-1]))
    # Both ranks name one step, judged from one collective (checks every 10 steps by default).
    [step] = stopped_at
    assert step < 100
    assert not (tmp_path / "output" / "model.safetensors").exists()


def test_loss_above_max_loss_is_divergence(datasets: dict[str, Path], tmp_path: Path) -> None:
    # Checks every 7 steps, but a checkpoint is due at step 3: the check that precedes it finds
    # step 1's loss too high, so no checkpoint of the diverged run is ever written.
    task = {**BASE_TASK, "checkpointEverySteps": 3, "divergence": {"maxLoss": 0.05, "checkEverySteps": 7}}
    pods = harness.run(
        tmp_path, task, f"file://{datasets['tabular']}", f"file://{tmp_path / 'output'}", workers=2, job="maxloss"
    )
    for pod in pods:
        assert pod.process.returncode != 0, harness.describe(pods)
        report = pod.report()
        assert report is not None and report["reason"] == "Diverged"
        assert "exceeded divergence.maxLoss 0.05 at step 1" in report["message"]
    assert not (tmp_path / "output" / "checkpoints").exists()


def test_several_processes_per_pod(datasets: dict[str, Path], tmp_path: Path) -> None:
    """NPROC_PER_NODE=2 in one pod: the entrypoint spawns both ranks and reports once for the pod."""
    task = {**BASE_TASK, "epochs": 2}
    [pod] = harness.run(
        tmp_path, task, f"file://{datasets['tabular']}", f"file://{tmp_path / 'output'}", nproc=2, job="nproc"
    )
    assert pod.process.returncode == 0, harness.describe([pod])
    assert {e["rank"] for e in pod.events("epoch_finished")} == {0, 1}
    report = pod.report()
    assert report is not None and report["outcome"] == "Succeeded"
    card = json.loads((tmp_path / "output" / "model-card.json").read_text())
    assert card["training"]["worldSize"] == 2
    first, second = card["training"]["parameterDigests"]
    assert first == second, "the two local ranks' parameters diverged"


def test_sigterm_writes_a_checkpoint_that_the_next_attempt_resumes_from(
    datasets: dict[str, Path], tmp_path: Path
) -> None:
    """What a Kueue preemption does to a pod: SIGTERM to every worker mid-training. With periodic
    checkpoints too rare to have written one, the workers agree on a step, the chief checkpoints
    it, and the next attempt starts there."""
    task = {**BASE_TASK, "epochs": 30, "checkpointEverySteps": 100_000, "validationFraction": 0.0}
    output = tmp_path / "output"
    dataset, out_uri = f"file://{datasets['tabular']}", f"file://{output}"
    first = harness.start(tmp_path, task, dataset, out_uri, workers=2, attempt=0, job="sigterm")
    try:
        wait_for(lambda: any(e["step"] >= 60 for e in first[0].events("progress")) or None, timeout=90,
                         what="training under way")
    finally:
        for pod in first:
            pod.process.send_signal(signal.SIGTERM)
    codes = harness.wait(first)
    assert codes == [1, 1], harness.describe(first)
    [stopped] = first[0].events("stopped_on_sigterm")
    assert [e["step"] for e in first[1].events("stopped_on_sigterm")] == [stopped["step"]]
    latest = (output / "checkpoints" / "latest").read_text().strip()
    assert latest == f"step-{stopped['step']}.pt"
    report = first[0].report()
    assert report is not None and "stopped on SIGTERM" in report["message"]
    assert not (output / "model-card.json").exists()

    second = harness.run(tmp_path, task, dataset, out_uri, workers=2, attempt=1, job="sigterm")
    assert [p.process.returncode for p in second] == [0, 0], harness.describe(second)
    for pod in second:
        [resumed] = pod.events("resumed")
        assert resumed["step"] == stopped["step"]
    card = json.loads((output / "model-card.json").read_text())
    assert card["training"]["resumedFromStep"] == stopped["step"]
