"""Held-out metrics. Precision/recall/F1 are macro averages so a minority class counts as much as
a majority one; a class never predicted has precision 0 (as sklearn's zero_division=0)."""

from __future__ import annotations

import hashlib

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def macro_scores(truth: np.ndarray, predicted: np.ndarray, num_classes: int) -> dict[str, float]:
    confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(confusion, (truth, predicted), 1)
    hits = np.diag(confusion).astype(np.float64)
    predicted_per_class = confusion.sum(axis=0)
    actual_per_class = confusion.sum(axis=1)
    precision = np.divide(hits, predicted_per_class, out=np.zeros_like(hits), where=predicted_per_class > 0)
    recall = np.divide(hits, actual_per_class, out=np.zeros_like(hits), where=actual_per_class > 0)
    denominator = precision + recall
    f1 = np.divide(2 * precision * recall, denominator, out=np.zeros_like(hits), where=denominator > 0)
    return {
        "accuracy": float(hits.sum() / max(len(truth), 1)),
        "precision": float(precision.mean()),
        "recall": float(recall.mean()),
        "f1": float(f1.mean()),
    }


@torch.no_grad()
def logits(model: nn.Module, x: torch.Tensor, device: torch.device, batch_size: int = 512) -> torch.Tensor:
    """The model's float32 logits for model-ready inputs (preprocess.transform), on the CPU: what
    the held-out metrics and every prediction (kubetrain_trainer.predict) are computed from. In
    float32 even on a GPU (where training runs in bf16 autocast): the metrics describe the
    exported float32 weights as a server runs them."""
    was_training = model.training
    model.eval()
    outputs = []
    for start in range(0, len(x), batch_size):
        outputs.append(model(x[start : start + batch_size].to(device)).float().cpu())
    model.train(was_training)
    return torch.cat(outputs) if outputs else torch.empty(0)


def scores(output: torch.Tensor, y: torch.Tensor, num_classes: int) -> dict[str, float]:
    """Held-out loss and macro scores of logits against labels, rounded to 6 digits as the status
    and the model card carry them, so a re-computation compares with `==`."""
    metrics = {"loss": F.cross_entropy(output, y, reduction="sum").item() / max(len(y), 1)}
    metrics.update(macro_scores(y.numpy(), output.argmax(dim=1).numpy(), num_classes))
    return {name: round(value, 6) for name, value in metrics.items()}


def evaluate(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, num_classes: int, device: torch.device, batch_size: int = 512
) -> dict[str, float]:
    return scores(logits(model, x, device, batch_size), y, num_classes)


def held_out_digest(x: torch.Tensor, y: torch.Tensor) -> str:
    """`sha256:<hex>` of the held-out set as the model saw it (inputs after preprocessing, then
    labels): the model card names the evaluation set by it, and the predictor checks that the
    split it recomputes is that set."""
    digest = hashlib.sha256()
    for tensor in (x, y):
        digest.update(tensor.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return "sha256:" + digest.hexdigest()
