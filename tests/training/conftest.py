"""Generated data sets (deterministic, written once per session) and one shared 2-worker tabular
run that several tests inspect, since each trainer start costs seconds of imports."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from kubetrain_trainer import datagen
from tests.training import harness

# The tabular set: 3 overlapping classes with 2% label noise. Logistic regression reaches ~0.73
# on its test split and the reference MLP ~0.91, so the bar below separates them.
TABULAR_ROWS = 2000
ACCURACY_BAR = 0.85

BASE_TASK: dict[str, Any] = {
    "type": "tabular-classification",
    "epochs": 15,
    "batchSize": 32,
    "learningRate": 0.002,
    "seed": 0,
    "validationFraction": 0.1,
    "testFraction": 0.2,
    "checkpointEverySteps": 100,
    "progressIntervalSeconds": 1,
    "model": {"hiddenSizes": [128, 64]},
}


@pytest.fixture(scope="session")
def datasets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("data")
    return {
        "tabular": datagen.write("tabular", root / "tabular.csv", TABULAR_ROWS, seed=0),
        "image": datagen.write("image", root / "digits.npz", 600, seed=0),
        "text": datagen.write("text", root / "topics.jsonl", 600, seed=0),
    }


@dataclass(frozen=True)
class Trained:
    pods: list[harness.Pod]
    output: Path
    task: dict[str, Any]


@pytest.fixture(scope="session")
def trained_tabular(datasets: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Trained]:
    workdir = tmp_path_factory.mktemp("tabular-run")
    output = workdir / "output"
    pods = harness.run(
        workdir, BASE_TASK, f"file://{datasets['tabular']}", f"file://{output}", workers=2, job="tabular"
    )
    yield Trained(pods, output, BASE_TASK)
