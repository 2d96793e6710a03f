"""The predictor is the training code: a model trained by the real trainer, loaded back from its
output location, re-scores its held-out split to exactly the metrics it reported, and predicts the
same through the Python API, the `predict` command and the HTTP server."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from kubetrain_trainer import data, preprocess
from kubetrain_trainer.errors import InvalidConfig, InvalidData
from kubetrain_trainer.predict import Predictor
from tests.helpers import wait_for
from tests.training import harness

pytestmark = pytest.mark.training

# Every family also exports ONNX, which ONNX Runtime must run to the PyTorch model's logits.
TASKS: dict[str, dict[str, Any]] = {
    "tabular": {"type": "tabular-classification", "epochs": 2, "batchSize": 32, "model": {"hiddenSizes": [32]},
                "exportFormats": ["onnx"]},
    "image": {"type": "image-classification", "epochs": 1, "batchSize": 32, "model": {"channels": [8]},
              "exportFormats": ["onnx"]},
    "text": {
        "type": "text-classification", "epochs": 1, "batchSize": 32,
        "model": {"layers": 1, "dModel": 16, "heads": 2, "vocabSize": 256, "maxLength": 8},
        "exportFormats": ["onnx"],
    },
}
# float32 logits through two runtimes' kernels.
ONNX_TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def runs(datasets: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[dict[str, Any], Path]]:
    """One single-process run per family, started together; each family's final report and output."""
    started = {}
    for kind, task in TASKS.items():
        workdir = tmp_path_factory.mktemp(f"predict-{kind}")
        [pod] = harness.start(workdir, task, f"file://{datasets[kind]}", f"file://{workdir / 'output'}", job=kind)
        started[kind] = (pod, workdir / "output")
    # Generous: three runs share two cores with whatever else the machine runs, and the ONNX exports
    # (torch.export) take most of a run there.
    harness.wait([pod for pod, _ in started.values()], timeout=540)
    finished = {}
    for kind, (pod, output) in started.items():
        report = pod.report()
        assert pod.process.returncode == 0 and report is not None, harness.describe([pod])
        finished[kind] = (report, output)
    return finished


@pytest.mark.parametrize("kind", list(TASKS))
def test_the_predictor_reproduces_the_reported_metrics_exactly(
    runs: dict[str, tuple[dict[str, Any], Path]], kind: str
) -> None:
    report, output = runs[kind]
    predictor = Predictor.load(report["provenance"]["modelCardUri"])
    assert predictor.evaluate() == report["metrics"]
    # The output location names the same card.
    assert Predictor.load(f"file://{output}").card == predictor.card


@pytest.mark.parametrize("kind", list(TASKS))
def test_predictions_are_the_evaluated_models_answers(
    runs: dict[str, tuple[dict[str, Any], Path]], datasets: dict[str, Path], kind: str
) -> None:
    _, output = runs[kind]
    predictor = Predictor.load(str(output))
    dataset = data.load(str(datasets[kind]), kind)  # type: ignore[arg-type]
    rows = dataset.features[:5]
    instances: list[Any] = rows.tolist()
    predictions = predictor.predict(instances)
    assert [p.label for p in predictions] == [
        predictor.classes[i] for i in predictor.logits(rows).argmax(dim=1).tolist()
    ]
    for prediction in predictions:
        assert set(prediction.probabilities) == set(predictor.classes)
        assert sum(prediction.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
        assert prediction.label == max(prediction.probabilities, key=prediction.probabilities.__getitem__)


@pytest.mark.parametrize("kind", list(TASKS))
def test_the_onnx_export_runs_in_onnx_runtime_as_the_pytorch_model(
    runs: dict[str, tuple[dict[str, Any], Path]], datasets: dict[str, Path], kind: str
) -> None:
    import onnxruntime

    report, output = runs[kind]
    predictor = Predictor.load(str(output))
    exported = predictor.card["exports"]["onnx"]
    blob = (output / "model.onnx").read_bytes()
    assert exported["uri"] == f"file://{output}/model.onnx"
    assert report["provenance"]["exports"]["onnx"] == {"uri": exported["uri"],
                                                       "digest": f"sha256:{hashlib.sha256(blob).hexdigest()}"}
    # Any batch size (the export traced two rows), the card's recipe applied outside the graph.
    raw = data.load(str(datasets[kind]), kind).features[:7]  # type: ignore[arg-type]
    inputs = preprocess.transform(predictor.card["preprocessing"], raw)
    session = onnxruntime.InferenceSession(blob)
    [logits] = session.run(["logits"], {"input": inputs})
    np.testing.assert_allclose(logits, predictor.logits(raw).numpy(), atol=ONNX_TOLERANCE)


def test_tabular_instances_by_feature_name_and_file(
    runs: dict[str, tuple[dict[str, Any], Path]], datasets: dict[str, Path], tmp_path: Path
) -> None:
    _, output = runs["tabular"]
    predictor = Predictor.load(str(output))
    names = predictor.card["schema"]["input"]["features"]
    rows = data.load(str(datasets["tabular"]), "tabular").features[:3]
    by_name = [dict(zip(names, row.tolist(), strict=True)) for row in rows]
    assert predictor.predict(by_name) == predictor.predict(rows.tolist())
    # The training CSV itself is a valid input: its label column is ignored.
    lines = datasets["tabular"].read_text().splitlines()[:4]
    (tmp_path / "few.csv").write_text("\n".join(lines) + "\n")
    assert predictor.predict_features(predictor.file_features(tmp_path / "few.csv")) == predictor.predict(
        rows.tolist()
    )
    with pytest.raises(InvalidData, match="do not fit the model's input"):
        predictor.predict([[1.0, 2.0]])


def test_the_predict_command_writes_one_json_line_per_instance(
    runs: dict[str, tuple[dict[str, Any], Path]], datasets: dict[str, Path], tmp_path: Path
) -> None:
    _, output = runs["text"]
    texts = [json.loads(line) for line in datasets["text"].read_text().splitlines()[:4]]
    source = tmp_path / "texts.jsonl"
    source.write_text("".join(json.dumps({"text": t["text"]}) + "\n" for t in texts))
    result = subprocess.run(
        [sys.executable, "-m", "kubetrain_trainer", "predict", "--model", str(output / "model-card.json"),
         "--input", str(source)],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    expected = Predictor.load(str(output)).predict([t["text"] for t in texts])
    assert lines == [p.model_dump() for p in expected]


def test_weights_that_are_not_the_cards_are_refused(
    runs: dict[str, tuple[dict[str, Any], Path]], tmp_path: Path
) -> None:
    _, output = runs["tabular"]
    card = json.loads((output / "model-card.json").read_text())
    tampered = tmp_path / "model.safetensors"
    tampered.write_bytes((output / "model.safetensors").read_bytes() + b" ")
    (tmp_path / "model-card.json").write_text(json.dumps({**card, "weights": {**card["weights"],
                                                                               "uri": str(tampered)}}))
    with pytest.raises(InvalidConfig, match="is not the model card's"):
        Predictor.load(str(tmp_path))


def test_another_data_set_is_not_taken_for_the_held_out_split(
    runs: dict[str, tuple[dict[str, Any], Path]], datasets: dict[str, Path], tmp_path: Path
) -> None:
    _, output = runs["tabular"]
    other = tmp_path / "other.csv"
    other.write_text(datasets["tabular"].read_text().replace("\n", "\r\n", 1))
    with pytest.raises(InvalidData, match="is not the training data's"):
        Predictor.load(str(output)).evaluate(str(other))


@pytest.fixture(scope="module")
def server(runs: dict[str, tuple[dict[str, Any], Path]]) -> Iterator[str]:
    """`python -m kubetrain_trainer serve` on the image model, as the trainer image runs it."""
    _, output = runs["image"]
    port = harness.free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "kubetrain_trainer", "serve", "--model", f"file://{output}", "--name", "digits",
         "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _answers(f"{base}/healthz") or process.poll() is not None, timeout=120, what="the server")
        assert process.poll() is None, process.stderr.read().decode() if process.stderr else ""
        yield base
    finally:
        process.terminate()
        process.wait(timeout=10)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except OSError:
        return False


def call(url: str, body: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(url, data=None if body is None else json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_the_http_predictor_answers_as_the_offline_one(
    server: str, runs: dict[str, tuple[dict[str, Any], Path]], datasets: dict[str, Path]
) -> None:
    report, output = runs["image"]
    with np.load(datasets["image"]) as archive:
        images = archive["x"][:3].tolist()
    status, answer = call(f"{server}/v1/models/digits:predict", {"instances": images})
    assert status == 200, answer
    assert answer["predictions"] == [p.model_dump() for p in Predictor.load(str(output)).predict(images)]
    status, model = call(f"{server}/v1/models/digits")
    assert status == 200 and model["ready"] is True
    assert model["version"] == report["provenance"]["weightsDigest"]


def test_the_http_predictor_refuses_what_it_cannot_answer(server: str) -> None:
    assert call(f"{server}/v1/models/other:predict", {"instances": [[0.0]]})[0] == 404
    status, answer = call(f"{server}/v1/models/digits:predict", {"inputs": [[0.0]]})
    assert status == 400 and "instances" in answer["error"]
    status, answer = call(f"{server}/v1/models/digits:predict", {"instances": [[0.0, 1.0]]})
    assert status == 400 and "do not fit the model's input" in answer["error"]
