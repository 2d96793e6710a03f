"""Held-out metrics. Precision/recall/F1 are macro averages so a minority class counts as much as
a majority one; a class never predicted has precision 0 (as sklearn's zero_division=0)."""

from __future__ import annotations

import contextlib

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
def evaluate(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, num_classes: int, device: torch.device, batch_size: int = 512
) -> dict[str, float]:
    was_training = model.training
    model.eval()
    total_loss = 0.0
    predictions = []
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext()
    for start in range(0, len(y), batch_size):
        xb, yb = x[start : start + batch_size].to(device), y[start : start + batch_size].to(device)
        with autocast:
            logits = model(xb)
        total_loss += F.cross_entropy(logits.float(), yb, reduction="sum").item()
        predictions.append(logits.argmax(dim=1).cpu())
    model.train(was_training)
    metrics = {"loss": total_loss / max(len(y), 1)}
    metrics.update(macro_scores(y.numpy(), torch.cat(predictions).numpy(), num_classes))
    return metrics
