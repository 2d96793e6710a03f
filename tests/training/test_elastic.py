"""spec.elastic for real: the pods' env as the operator renders it, torchrun's agent in every pod
(the trainer's entrypoint starts it), and the built-in trainer resuming in a new world size."""

from __future__ import annotations

import json
import signal
from pathlib import Path

from tests.helpers import wait_for
from tests.training import harness
from tests.training.conftest import ACCURACY_BAR, BASE_TASK


def test_a_lost_worker_above_the_minimum_leaves_the_others_training(
    datasets: dict[str, Path], tmp_path: Path
) -> None:
    """3 workers, at least 2: SIGTERM to worker 2 mid-run (a deleted pod, a drained node). Every rank
    checkpoints with it, workers 0 and 1 re-form a group of 2 in their running pods, resume from
    that checkpoint with the data re-sharded over 2, and finish above the accuracy bar."""
    task = {**BASE_TASK, "epochs": 20, "checkpointEverySteps": 100_000}
    output = tmp_path / "output"
    pods = harness.start_elastic(
        tmp_path, task, f"file://{datasets['tabular']}", f"file://{output}", workers=3, min_workers=2
    )
    try:
        wait_for(lambda: any(e["step"] >= 40 for e in pods[0].events("progress")) or None, timeout=180,
                 what="training under way")
    finally:
        pods[2].process.send_signal(signal.SIGTERM)
    codes = harness.wait(pods[:2], timeout=300)
    assert codes == [0, 0], harness.describe(pods)
    assert pods[2].process.wait(timeout=60) != 0
    [stopped] = pods[0].events("stopped_on_sigterm")
    resumed = [e for e in pods[0].events("resumed") if e["world_size"] == 2]
    assert resumed and resumed[0]["saved_step"] == stopped["step"], harness.describe(pods)
    report = pods[0].report()
    assert report is not None and report["metrics"]["accuracy"] >= ACCURACY_BAR, report
    card = json.loads((output / "model-card.json").read_text())
    assert card["training"]["worldSize"] == 2
    assert len(set(card["training"]["parameterDigests"])) == 1
