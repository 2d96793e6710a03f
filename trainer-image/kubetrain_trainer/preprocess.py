"""Deterministic split and feature preparation. Everything is fitted on the training split only,
so no statistic of the held-out rows leaks into training."""

from __future__ import annotations

import re
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from kubetrain_trainer.config import TaskConfig
from kubetrain_trainer.data import Dataset
from kubetrain_trainer.errors import InvalidData

_WORD = re.compile(r"\w+")
PAD = 0
TOKENIZER = "crc32-hashed-words"


@dataclass(frozen=True)
class Split:
    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray


@dataclass(frozen=True)
class Prepared:
    """Model-ready tensors of the three splits plus what the model card must record to reproduce
    the preparation at inference time."""

    train: tuple[torch.Tensor, torch.Tensor]
    validation: tuple[torch.Tensor, torch.Tensor]
    test: tuple[torch.Tensor, torch.Tensor]
    input_shape: tuple[int, ...]
    num_classes: int
    recipe: dict[str, object]


def stratified_split(labels: np.ndarray, validation_fraction: float, test_fraction: float, seed: int) -> Split:
    """Per-class shuffles keep each split's class mix equal to the whole; the seed alone decides
    membership, so every rank and every restart sees the same split."""
    rng = np.random.default_rng(seed)
    parts: dict[str, list[np.ndarray]] = {"train": [], "validation": [], "test": []}
    for cls in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == cls))
        n_test = int(round(len(members) * test_fraction))
        n_val = min(int(round(len(members) * validation_fraction)), len(members) - n_test - 1)
        n_val = max(n_val, 0)
        parts["test"].append(members[:n_test])
        parts["validation"].append(members[n_test : n_test + n_val])
        parts["train"].append(members[n_test + n_val :])
    split = Split(**{name: rng.permutation(np.concatenate(chunks)) for name, chunks in parts.items()})
    if len(split.test) == 0 or len(split.train) == 0:
        raise InvalidData(
            f"{len(labels)} rows are too few to hold out a test split of {test_fraction:.0%} and still train"
        )
    return split


def tokenize(texts: np.ndarray, vocab_size: int, max_length: int) -> np.ndarray:
    """Hashed word ids: no vocabulary to fit, store or ship, and a fine-tune on new text maps
    the same word to the same embedding row as the base model did."""
    ids = np.full((len(texts), max_length), PAD, dtype=np.int64)
    for row, text in enumerate(texts):
        words = _WORD.findall(str(text).lower())[:max_length]
        ids[row, : len(words)] = [zlib.crc32(w.encode()) % (vocab_size - 1) + 1 for w in words]
    return ids


def split_of(dataset: Dataset, task: TaskConfig) -> Split:
    """The run's split of `dataset`, which the task's seed and fractions alone decide: the
    predictor recomputes the held-out rows from the model card's configuration."""
    return stratified_split(dataset.labels, task.validation_fraction, task.test_fraction, task.seed)


def fit(dataset: Dataset, task: TaskConfig, split: Split) -> dict[str, object]:
    """The recipe: everything `transform` needs, fitted on the training rows and kept at full
    precision (JSON round-trips a float exactly), so the model card reproduces the training
    features bit for bit."""
    if dataset.kind == "text":
        return {"tokenizer": TOKENIZER, "vocabSize": task.model.vocab_size, "maxLength": task.model.max_length}
    # Tabular columns are standardised one by one; image pixels share one scale.
    axis = 0 if dataset.kind == "tabular" else None
    train = dataset.features[split.train]
    mean = train.mean(axis=axis, dtype=np.float64)
    std = train.std(axis=axis, dtype=np.float64)
    std = np.where(std > 1e-12, std, 1.0)
    return {"standardize": {"mean": mean.tolist(), "std": std.tolist()}}


def transform(recipe: Mapping[str, Any], features: np.ndarray) -> np.ndarray:
    """Raw features (texts, pixels, table rows) to model inputs: the one function both training
    and the predictor (kubetrain_trainer.predict) call."""
    if recipe.get("tokenizer") == TOKENIZER:
        return tokenize(features, int(recipe["vocabSize"]), int(recipe["maxLength"]))
    scale = recipe["standardize"]
    mean, std = np.asarray(scale["mean"], dtype=np.float64), np.asarray(scale["std"], dtype=np.float64)
    return np.ascontiguousarray(((features - mean) / std).astype(np.float32))


def prepare(dataset: Dataset, task: TaskConfig) -> Prepared:
    split = split_of(dataset, task)
    recipe = fit(dataset, task, split)
    x, y = transform(recipe, dataset.features), dataset.labels

    def tensors(rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.from_numpy(np.ascontiguousarray(x[rows])), torch.from_numpy(y[rows])

    recipe["split"] = {
        "train": len(split.train),
        "validation": len(split.validation),
        "test": len(split.test),
        "seed": task.seed,
    }
    return Prepared(
        train=tensors(split.train),
        validation=tensors(split.validation),
        test=tensors(split.test),
        input_shape=tuple(x.shape[1:]),
        num_classes=len(dataset.classes),
        recipe=recipe,
    )
