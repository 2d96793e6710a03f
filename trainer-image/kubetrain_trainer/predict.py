"""The predictor: a trained classifier loaded back from its output location (model card + weights)
and run on raw inputs, for notebooks and pipelines (`Predictor.load(uri).predict(...)`), the
`predict` command and the HTTP server (kubetrain_trainer.serve).

It is the training code, not a copy of it: the model is rebuilt by models.build from the card's
configuration, the inputs go through preprocess.transform with the card's recipe, and the logits
come from evaluate.logits, the function the held-out metrics were computed with. So
`evaluate(dataset)` on the recorded split reproduces the card's (and the job status's) metrics
exactly, and a prediction is what the evaluated model said."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict
from safetensors.torch import load as load_safetensors
from torch import nn

from kubetrain_trainer import data, evaluate, export, models, preprocess, storage
from kubetrain_trainer.config import Family, TaskConfig
from kubetrain_trainer.errors import InvalidConfig, InvalidData

if TYPE_CHECKING:
    from kubetrain_trainer.llm.predict import GenerativePredictor

CPU = torch.device("cpu")


class Prediction(BaseModel):
    """One instance's answer: the most probable class and every class's probability."""

    model_config = ConfigDict(frozen=True)

    label: str
    probabilities: dict[str, float]


def schema(
    family: Family, feature_names: Sequence[str], input_shape: Sequence[int], classes: Sequence[str]
) -> dict[str, Any]:
    """The input and output of one instance, as the model card documents them and `instances`
    below parses them."""
    inputs: dict[str, dict[str, Any]] = {
        "tabular": {
            "type": "tabular",
            "features": list(feature_names),
            "encoding": "a list of numbers in the order of `features`, or an object keyed by feature name",
        },
        "image": {
            "type": "image",
            "shape": list(input_shape),
            "encoding": "nested lists of raw pixel values, channels x height x width (height x width for one channel)",
        },
        "text": {"type": "text", "encoding": "a string, or an object with a `text` string"},
    }
    return {
        "input": inputs[family],
        "output": {"label": f"one of {list(classes)}", "probabilities": "each class's softmax probability"},
    }


def card_uri(uri: str) -> str:
    """A model card's URI from the card itself or the output location holding it."""
    return uri if uri.endswith(".json") else storage.join(uri, export.CARD)


def read_card(uri: str) -> dict[str, Any]:
    location = card_uri(uri)
    try:
        card: dict[str, Any] = json.loads(storage.read_bytes(location))
    except (OSError, ValueError) as error:
        raise InvalidConfig(f"{location}: cannot read the model card ({error})") from error
    return card


def load(uri: str, weights_digest: str | None = None) -> Predictor | GenerativePredictor:
    """The predictor for whatever the card describes: a classifier, or a causal-lm fine-tune
    (kubetrain_trainer.llm.predict, imported only then: it loads transformers and peft)."""
    card = read_card(uri)
    if card.get("model", {}).get("family") == "causal-lm":
        from kubetrain_trainer.llm.predict import GenerativePredictor

        return GenerativePredictor.load(card, weights_digest)
    return Predictor.from_card(card, weights_digest)


@dataclass(frozen=True)
class Predictor:
    card: dict[str, Any]
    task: TaskConfig
    module: nn.Module
    classes: list[str]

    @classmethod
    def load(cls, uri: str, weights_digest: str | None = None) -> Predictor:
        """From a model card's URI (a ModelVersion's modelCardUri) or the output location holding
        it; refuses weights whose sha256 is not the card's, nor `weights_digest` (`sha256:<hex>`,
        what a ModelVersion recorded) when given."""
        return cls.from_card(read_card(uri), weights_digest)

    @classmethod
    def from_card(cls, card: dict[str, Any], weights_digest: str | None = None) -> Predictor:
        if card.get("model", {}).get("family") not in ("tabular", "image", "text"):
            raise InvalidConfig(f"the predictor serves the built-in classifiers, not {card.get('model')}")
        if "inputShape" not in card["model"]:
            raise InvalidConfig("the model card predates model.inputShape; retrain with this trainer")
        task = TaskConfig.model_validate(card["config"])
        classes = [str(name) for name in card["data"]["classes"]]
        module = models.build(task, tuple(card["model"]["inputShape"]), len(classes))
        module.load_state_dict(load_safetensors(_weights(card, weights_digest)))
        module.eval()
        return cls(card=card, task=task, module=module, classes=classes)

    @property
    def family(self) -> Family:
        return self.task.family

    def logits(self, features: np.ndarray) -> torch.Tensor:
        """Raw features (as data.load reads them) through the recorded recipe into the model."""
        inputs = torch.from_numpy(preprocess.transform(self.card["preprocessing"], features))
        return evaluate.logits(self.module, inputs, CPU)

    def predict(self, instances: Sequence[Any]) -> list[Prediction]:
        """Instances as the card's schema describes them (JSON values); see `features`."""
        return self.predict_features(self.features(instances))

    def predict_features(self, features: np.ndarray) -> list[Prediction]:
        if len(features) == 0:
            return []
        probabilities = torch.softmax(self.logits(features), dim=1).numpy()
        return [
            Prediction(
                label=self.classes[int(row.argmax())],
                probabilities={name: float(p) for name, p in zip(self.classes, row.tolist(), strict=True)},
            )
            for row in probabilities
        ]

    def evaluate(self, dataset_uri: str | None = None) -> dict[str, float]:
        """The held-out metrics on the run's own test split of `dataset_uri` (default: the data
        set the card names), recomputed: equal to the card's metrics when data and weights are
        the run's. A data set whose bytes differ from the card's digest is refused, since its
        split would not be the held-out one."""
        dataset = data.load(dataset_uri or self.card["data"]["uri"], self.family)
        if dataset.audit.sha256 != self.card["data"]["sha256"]:
            raise InvalidData(
                f"{dataset.audit.uri}: sha256 {dataset.audit.sha256} is not the training data's "
                f"{self.card['data']['sha256']}; its test split is not the held-out set"
            )
        test = preprocess.split_of(dataset, self.task).test
        x = torch.from_numpy(preprocess.transform(self.card["preprocessing"], dataset.features[test]))
        y = torch.from_numpy(dataset.labels[test])
        held_out = self.card.get("evaluation", {}).get("digest")
        if held_out is not None and evaluate.held_out_digest(x, y) != held_out:
            raise InvalidData(f"{dataset.audit.uri}: the recomputed test split's digest is not the card's {held_out}")
        return evaluate.scores(evaluate.logits(self.module, x, CPU), y, len(self.classes))

    def features(self, instances: Sequence[Any]) -> np.ndarray:
        """JSON instances to the raw feature array data.load would have produced for them."""
        try:
            if self.family == "text":
                return np.array([_text(i) for i in instances], dtype=object)
            if self.family == "tabular":
                names = self.card["schema"]["input"]["features"]
                return np.array([_row(i, names) for i in instances], dtype=np.float32).reshape(-1, len(names))
            shape = tuple(self.card["model"]["inputShape"])
            pixels = np.array(instances, dtype=np.float32)
            return pixels.reshape(len(instances), *shape)
        except (KeyError, TypeError, ValueError) as error:
            expected = self.card["schema"]["input"]
            raise InvalidData(f"instances do not fit the model's input ({expected}): {error}") from error

    def predict_file(self, path: Path) -> list[Prediction]:
        return self.predict_features(self.file_features(path))

    def file_features(self, path: Path) -> np.ndarray:
        """A file of instances: .csv (tabular columns by name, or a `text` column; a `label`
        column is ignored), .jsonl (one instance per line) or .npz (images in array `x`)."""
        suffix = path.suffix.lower()
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as archive:
                return self.features(archive["x"])
        text = data.decode(path.read_bytes(), str(path))
        if suffix == ".csv":
            header, rows = data.csv_rows(text, str(path), ())
            return self.features([dict(zip(header, row, strict=True)) for row in rows])
        return self.features([json.loads(line) for line in text.splitlines() if line.strip()])


def _weights(card: dict[str, Any], expected: str | None) -> bytes:
    weights = card["weights"]
    blob = storage.read_bytes(weights["uri"])
    digest = hashlib.sha256(blob).hexdigest()
    if digest != weights["sha256"]:
        raise InvalidConfig(f"{weights['uri']}: sha256 {digest} is not the model card's {weights['sha256']}")
    if expected is not None and f"sha256:{digest}" != expected:
        raise InvalidConfig(f"{weights['uri']}: sha256:{digest} is not the expected {expected}")
    return blob


def _text(instance: Any) -> str:
    text = instance.get(data.TEXT) if isinstance(instance, dict) else instance
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"{instance!r} is not a non-empty string or an object with one under '{data.TEXT}'")
    return text


def _row(instance: Any, names: list[str]) -> list[float]:
    if isinstance(instance, dict):
        return [float(instance[name]) for name in names]
    if len(instance) != len(names):
        raise ValueError(f"{len(instance)} values for {len(names)} features")
    return [float(value) for value in instance]
