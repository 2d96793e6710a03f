"""The three reference model families. Attention is written with plain Linear projections (not
nn.MultiheadAttention, which reads its weights directly) so LoRA can wrap every projection."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from kubetrain_trainer.config import ModelConfig, TaskConfig


class MLP(nn.Module):
    def __init__(self, in_features: int, hidden_sizes: list[int], num_classes: int, dropout: float) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = in_features
        for size in hidden_sizes:
            layers += [nn.Linear(width, size), nn.ReLU(), nn.Dropout(dropout)]
            width = size
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


class SmallCNN(nn.Module):
    def __init__(self, in_channels: int, channels: list[int], num_classes: int, dropout: float) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = in_channels
        for out in channels:
            layers += [
                nn.Conv2d(width, out, 3, padding=1),
                nn.BatchNorm2d(out),
                nn.ReLU(),
                nn.MaxPool2d(2, ceil_mode=True),
            ]
            width = out
        self.features = nn.Sequential(*layers)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = self.features(x).mean(dim=(2, 3))
        return self.head(self.dropout(pooled))


class EncoderLayer(nn.Module):
    """Pre-norm transformer encoder layer."""

    def __init__(self, d_model: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(d_model)
        self.query = nn.Linear(d_model, d_model)
        self.key = nn.Linear(d_model, d_model)
        self.value = nn.Linear(d_model, d_model)
        self.out = nn.Linear(d_model, d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.ff1 = nn.Linear(d_model, 4 * d_model)
        self.ff2 = nn.Linear(4 * d_model, d_model)
        self.dropout = nn.Dropout(dropout)

    def _split(self, t: torch.Tensor) -> torch.Tensor:
        batch, length, width = t.shape
        return t.view(batch, length, self.heads, width // self.heads).transpose(1, 2)

    def forward(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        h = self.norm1(x)
        attended = F.scaled_dot_product_attention(
            self._split(self.query(h)),
            self._split(self.key(h)),
            self._split(self.value(h)),
            attn_mask=keep[:, None, None, :],
            dropout_p=self.dropout.p if self.training else 0.0,
        )
        x = x + self.dropout(self.out(attended.transpose(1, 2).flatten(2)))
        return x + self.dropout(self.ff2(F.gelu(self.ff1(self.norm2(x)))))


class TextTransformer(nn.Module):
    def __init__(self, config: ModelConfig, num_classes: int) -> None:
        super().__init__()
        self.tokens = nn.Embedding(config.vocab_size, config.d_model, padding_idx=0)
        self.positions = nn.Embedding(config.max_length, config.d_model)
        self.layers = nn.ModuleList(
            EncoderLayer(config.d_model, config.heads, config.dropout) for _ in range(config.layers)
        )
        self.norm = nn.LayerNorm(config.d_model)
        self.head = nn.Linear(config.d_model, num_classes)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        keep = ids != 0
        # A row of only padding would make attention softmax over nothing (NaN); let it attend to itself.
        keep = keep | ~keep.any(dim=1, keepdim=True)
        x = self.tokens(ids) + self.positions(torch.arange(ids.shape[1], device=ids.device))
        for layer in self.layers:
            x = layer(x, keep)
        x = self.norm(x)
        weights = keep.unsqueeze(-1).to(x.dtype)
        pooled = (x * weights).sum(1) / weights.sum(1)
        return self.head(pooled)


def build(task: TaskConfig, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    m = task.model
    if task.family == "tabular":
        return MLP(input_shape[0], m.hidden_sizes, num_classes, m.dropout)
    if task.family == "image":
        return SmallCNN(input_shape[0], m.channels, num_classes, m.dropout)
    return TextTransformer(m, num_classes)
