"""Data loading, auditing and splitting: bad input is refused with a reason the operator knows."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import numpy as np
import pytest

from kubetrain_trainer import data
from kubetrain_trainer.config import Family, parse_task
from kubetrain_trainer.errors import InvalidConfig, InvalidData
from kubetrain_trainer.preprocess import stratified_split
from tests.training import harness
from tests.training.conftest import BASE_TASK, TABULAR_ROWS


def test_audit_of_the_generated_tabular_set(datasets: dict[str, Path]) -> None:
    loaded = data.load(f"file://{datasets['tabular']}", "tabular")
    assert loaded.features.shape == (TABULAR_ROWS, 20)
    assert loaded.classes == ["0", "1", "2"]
    assert loaded.audit.sha256 == hashlib.sha256(datasets["tabular"].read_bytes()).hexdigest()
    assert sum(loaded.audit.class_counts.values()) == TABULAR_ROWS
    assert 0.9 < loaded.audit.balance <= 1.0


def test_image_and_text_sets_load(datasets: dict[str, Path]) -> None:
    images = data.load(str(datasets["image"]), "image")
    assert images.features.shape == (600, 1, 8, 8) and len(images.classes) == 10
    texts = data.load(str(datasets["text"]), "text")
    assert len(texts.features) == 600 and texts.classes == ["sports", "technology", "weather"]


@pytest.mark.parametrize(
    ("name", "content", "kind", "complaint"),
    [
        ("empty.csv", b"", "tabular", "empty"),
        ("header-only.csv", b"a,b,label\n", "tabular", "no examples"),
        ("no-label.csv", b"a,b\n1,2\n", "tabular", "lacks column(s) ['label']"),
        ("ragged.csv", b"a,b,label\n1,2,0\n1,0\n", "tabular", "line 3 has 2 fields"),
        ("words.csv", b"a,b,label\n1,2,0\n1,x,1\n", "tabular", "line 3 column 'b' is not a number"),
        ("nan.csv", b"a,b,label\n1,2,0\n1,nan,1\n", "tabular", "non-finite"),
        ("one-class.csv", b"a,label\n1,0\n2,0\n", "tabular", "at least 2 classes"),
        ("broken.npz", b"not a zip archive", "image", "not a readable .npz"),
        ("bad.jsonl", b'{"text": "a", "label": "x"}\n{"text": "b"}\n', "text", "line 2"),
    ],
)
def test_malformed_data_is_refused(tmp_path: Path, name: str, content: bytes, kind: Family, complaint: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(InvalidData) as raised:
        data.load(str(path), kind)
    assert complaint in raised.value.message


def test_image_archive_without_labels_is_refused(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    np.savez(buffer, x=np.zeros((4, 8, 8)))
    (tmp_path / "x.npz").write_bytes(buffer.getvalue())
    with pytest.raises(InvalidData, match="needs arrays 'x'"):
        data.load(str(tmp_path / "x.npz"), "image")


def test_missing_file_is_invalid_data(tmp_path: Path) -> None:
    with pytest.raises(InvalidData, match="cannot read"):
        data.load(f"file://{tmp_path}/nope.csv", "tabular")


def test_split_is_seeded_stratified_and_disjoint() -> None:
    labels = np.repeat(np.arange(3), [500, 300, 200])
    first = stratified_split(labels, 0.1, 0.2, seed=7)
    again = stratified_split(labels, 0.1, 0.2, seed=7)
    other = stratified_split(labels, 0.1, 0.2, seed=8)
    assert all(np.array_equal(a, b) for a, b in zip(vars(first).values(), vars(again).values()))
    assert not np.array_equal(first.test, other.test)
    assert np.bincount(labels[first.test]).tolist() == [100, 60, 40]
    assert np.bincount(labels[first.validation]).tolist() == [50, 30, 20]
    everything = np.concatenate([first.train, first.validation, first.test])
    assert sorted(everything.tolist()) == list(range(len(labels)))


def test_config_errors_name_the_key() -> None:
    with pytest.raises(InvalidConfig, match="batchSize"):
        parse_task(json.dumps({**BASE_TASK, "batchSize": 0}))
    with pytest.raises(InvalidConfig, match="learnigRate"):
        parse_task(json.dumps({**BASE_TASK, "learnigRate": 0.1}))
    with pytest.raises(InvalidConfig, match="divisible"):
        parse_task(json.dumps({"type": "text-classification", "model": {"dModel": 30, "heads": 4}}))
    with pytest.raises(InvalidConfig, match="type"):
        parse_task(json.dumps({**BASE_TASK, "type": "regression"}))
    with pytest.raises(InvalidConfig, match="KUBETRAIN_TASK"):
        parse_task(None)


@pytest.mark.training
def test_empty_dataset_fails_every_worker_with_invalid_data(tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    pods = harness.run(tmp_path, BASE_TASK, f"file://{empty}", f"file://{tmp_path / 'output'}", workers=2, job="empty")
    for pod in pods:
        assert pod.process.returncode != 0
        report = pod.report()
        assert report == {
            "outcome": "Failed",
            "reason": "InvalidData",
            "message": f"file://{empty}: the data set is empty",
            "metrics": {},
        }
