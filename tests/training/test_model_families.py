"""The image (CNN) and text (transformer) families train end to end on their generated sets."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.training import harness

pytestmark = pytest.mark.training

TASKS = {
    "image": {
        "type": "image-classification",
        "epochs": 4,
        "batchSize": 32,
        "learningRate": 0.01,
        "model": {"channels": [16, 32]},
    },
    "text": {
        "type": "text-classification",
        "epochs": 4,
        "batchSize": 32,
        "learningRate": 0.003,
        "model": {"layers": 1, "dModel": 32, "heads": 2, "vocabSize": 512, "maxLength": 12},
    },
}
# Chance is 1/10 for digits and 1/3 for topics; 4 epochs reach ~0.9 and ~0.97 here.
BARS = {"image": 0.75, "text": 0.8}


@pytest.fixture(scope="module")
def runs(
    datasets: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, tuple[harness.Pod, Path]]]:
    """Both single-process runs start together: each is mostly interpreter start-up."""
    started = {}
    for kind, task in TASKS.items():
        workdir = tmp_path_factory.mktemp(kind)
        [pod] = harness.start(workdir, task, str(datasets[kind]), str(workdir / "output"), job=kind)
        started[kind] = (pod, workdir / "output")
    harness.wait([pod for pod, _ in started.values()])
    yield started


@pytest.mark.parametrize("kind", ["image", "text"])
def test_family_trains_to_finite_metrics(runs: dict[str, tuple[harness.Pod, Path]], kind: str) -> None:
    pod, output = runs[kind]
    assert pod.process.returncode == 0, harness.describe([pod])
    report = pod.report()
    assert report is not None and report["outcome"] == "Succeeded"
    assert all(math.isfinite(v) for v in report["metrics"].values())
    assert report["metrics"]["accuracy"] >= BARS[kind], report
    card = json.loads((output / "model-card.json").read_text())
    assert card["model"]["class"] == {"image": "SmallCNN", "text": "TextTransformer"}[kind]
    assert (output / "model.safetensors").stat().st_size > 0
