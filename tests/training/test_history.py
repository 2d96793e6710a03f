"""What a finished run leaves beside its model so that it outlives the pods (docs/history-and-curves.md):
the metric history, each process's logs, the curves as a PNG, and the model card naming them."""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

import pytest
from PIL import Image

from kubetrain.api.history import parse_history
from kubetrain_trainer.history import step_interval
from tests.training.conftest import Trained

pytestmark = pytest.mark.training

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height from the PNG's first chunk, which must be its IHDR of 13 bytes."""
    assert data[:8] == PNG_SIGNATURE, data[:8]
    length, kind = struct.unpack(">I4s", data[8:16])
    assert (length, kind) == (13, b"IHDR")
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_the_metric_history_has_train_validation_and_test_records(trained_tabular: Trained) -> None:
    # Parsed with the operator's model: what `kubetrain curve` reads is what the trainer wrote.
    records = parse_history((trained_tabular.output / "metrics.jsonl").read_text())
    card = json.loads((trained_tabular.output / "model-card.json").read_text())
    total = card["training"]["totalSteps"]
    train = [r for r in records if r.phase == "train"]
    validation = [r for r in records if r.phase == "validation"]
    [test] = [r for r in records if r.phase == "test"]
    assert [r.step for r in train] == list(range(step_interval(total), total + 1, step_interval(total)))
    assert all(set(r.metrics) == {"loss"} and r.metrics["loss"] > 0 for r in train)
    assert train[-1].metrics["loss"] < train[0].metrics["loss"], "the recorded train loss did not fall"
    epochs = trained_tabular.task["epochs"]
    assert [r.epoch for r in validation] == list(range(1, epochs + 1))
    assert validation[-1].step == total and set(validation[-1].metrics) == {"loss", "accuracy"}
    assert test.step == total and test.metrics == card["metrics"]


def test_each_rank_archives_its_own_log(trained_tabular: Trained) -> None:
    for rank, pod in enumerate(trained_tabular.pods):
        archived = [json.loads(line) for line in (trained_tabular.output / "logs" / f"rank-{rank}.log").open()]
        assert {line["rank"] for line in archived} == {rank}
        events = [line["event"] for line in archived]
        assert "training_started" in events and events[-1] == "exiting", events
        # The archive holds exactly what the process logged on stderr.
        assert [line["event"] for line in pod.events()] == events


def test_the_curves_png_is_well_formed_and_linked_from_the_model_card(trained_tabular: Trained) -> None:
    output: Path = trained_tabular.output
    data = (output / "curves.png").read_bytes()
    width, height = png_size(data)
    # One 600 x 320 panel per metric with a curve: loss and accuracy (precision, recall and f1 are
    # measured once, on the test split).
    assert (width, height) == (600, 2 * 320)
    with Image.open(output / "curves.png") as image:
        image.verify()
    with Image.open(output / "curves.png") as image:
        colours = image.convert("RGB").getcolors(maxcolors=1 << 16)
    assert colours is not None and len(colours) > 3, "the picture is blank"

    history = json.loads((output / "model-card.json").read_text())["history"]
    assert history["curves"] == {
        "uri": f"file://{output}/curves.png", "path": "curves.png", "sha256": hashlib.sha256(data).hexdigest()
    }
    metrics = (output / "metrics.jsonl").read_bytes()
    assert history["metrics"]["path"] == "metrics.jsonl"
    assert history["metrics"]["sha256"] == hashlib.sha256(metrics).hexdigest()
    assert history["logs"] == {"uri": f"file://{output}/logs/", "path": "logs/"}
