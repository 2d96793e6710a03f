"""The held-out metrics against an independent implementation (scikit-learn) on the same
predictions: F1 drives promotion gates, so a wrong average would promote the wrong model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score, log_loss, precision_recall_fscore_support
from torch import nn

from kubetrain_trainer.evaluate import evaluate, macro_scores


def sklearn_scores(truth: np.ndarray, predicted: np.ndarray, num_classes: int) -> dict[str, float]:
    """Macro averages over every class of the data set, a class never predicted (or never
    present) scoring 0, as the trainer's module docstring promises."""
    precision, recall, f1, _ = precision_recall_fscore_support(
        truth, predicted, labels=list(range(num_classes)), average="macro", zero_division=0
    )
    return {"accuracy": accuracy_score(truth, predicted), "precision": precision, "recall": recall, "f1": f1}


def _random_case(seed: int, num_classes: int, rows: int, hit_rate: float) -> tuple[np.ndarray, np.ndarray, int]:
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, num_classes, rows)
    noise = rng.integers(0, num_classes, rows)
    return truth, np.where(rng.random(rows) < hit_rate, truth, noise), num_classes


CASES = {
    "imbalanced-3-classes": (np.array([0] * 8 + [1] * 3 + [2]), np.array([0] * 6 + [1, 2] + [1, 1, 0] + [2]), 3),
    "class-never-predicted": (np.array([0, 0, 1, 1, 2, 2]), np.array([0, 1, 1, 1, 0, 0]), 3),
    "class-absent-from-truth": (np.array([0, 0, 1, 1]), np.array([0, 2, 1, 2]), 3),
    "perfect": (np.array([0, 1, 2, 3]), np.array([0, 1, 2, 3]), 4),
    "all-wrong": (np.array([0, 1, 0, 1]), np.array([1, 0, 1, 0]), 2),
    "random-10-classes": _random_case(seed=1, num_classes=10, rows=500, hit_rate=0.6),
    "random-binary": _random_case(seed=2, num_classes=2, rows=301, hit_rate=0.3),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_macro_scores_match_sklearn(case: tuple[np.ndarray, np.ndarray, int]) -> None:
    truth, predicted, num_classes = case
    ours = macro_scores(truth, predicted, num_classes)
    assert ours == pytest.approx(sklearn_scores(truth, predicted, num_classes), abs=1e-12)


def test_evaluate_scores_the_models_own_predictions_like_sklearn() -> None:
    """Through evaluate() itself, in several batches: argmax predictions and the mean cross-entropy
    against scikit-learn's scores and log loss of the same logits."""
    torch.manual_seed(0)
    num_classes, rows = 4, 1100
    model = nn.Linear(6, num_classes)
    x, y = torch.randn(rows, 6), torch.randint(0, num_classes, (rows,))
    metrics = evaluate(model, x, y, num_classes, torch.device("cpu"), batch_size=256)

    with torch.no_grad():
        logits = model(x)
    expected = sklearn_scores(y.numpy(), logits.argmax(dim=1).numpy(), num_classes)
    expected["loss"] = log_loss(y.numpy(), torch.softmax(logits, dim=1).numpy(), labels=list(range(num_classes)))
    assert metrics == pytest.approx(expected, abs=1e-6)
