"""A minimal LoRA (low-rank adaptation) for nn.Linear, so fine-tuning the built-in models needs no
peft (their classes are not peft's; the causal-lm task's Hugging Face models use peft itself,
kubetrain_trainer.llm.adapters, reading the same `finetune.lora` settings).

Exported weights are merged back into plain Linear layers: the output is loadable by the same
model class as a from-scratch run, with no adapter code needed at inference.
"""

from __future__ import annotations

import math
from typing import cast

import torch
from torch import nn

from kubetrain_trainer.config import LoraConfig
from kubetrain_trainer.errors import InvalidConfig


class LoRALinear(nn.Module):
    def __init__(self, base: nn.Linear, rank: int, alpha: float, dropout: float = 0.0) -> None:
        super().__init__()
        self.base = base
        self.base.requires_grad_(False)
        self.scale = alpha / rank
        self.dropout = nn.Dropout(dropout)
        self.lora_a = nn.Parameter(torch.empty(rank, base.in_features, device=base.weight.device))
        # B starts at zero so the adapted model equals the base model before the first step.
        self.lora_b = nn.Parameter(torch.zeros(base.out_features, rank, device=base.weight.device))
        nn.init.kaiming_uniform_(self.lora_a, a=math.sqrt(5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + (self.dropout(x) @ self.lora_a.t() @ self.lora_b.t()) * self.scale

    def merged(self) -> nn.Linear:
        linear = nn.Linear(self.base.in_features, self.base.out_features, bias=self.base.bias is not None)
        linear = linear.to(self.base.weight.device, self.base.weight.dtype)
        with torch.no_grad():
            linear.weight.copy_(self.base.weight + (self.lora_b @ self.lora_a) * self.scale)
            if self.base.bias is not None:
                linear.bias.copy_(self.base.bias)
        return linear


def _targets(model: nn.Module, names: list[str]) -> list[str]:
    linear = [name for name, module in model.named_modules() if isinstance(module, nn.Linear)]
    if not names:
        return linear
    chosen = [n for n in linear if n in names or n.rsplit(".", 1)[-1] in names]
    if not chosen:
        raise InvalidConfig(f"finetune.lora.targetModules {names} match no Linear layer; the model has {linear}")
    return chosen


def _replace(model: nn.Module, path: str, module: nn.Module) -> None:
    parent_path, _, leaf = path.rpartition(".")
    parent = model.get_submodule(parent_path) if parent_path else model
    setattr(parent, leaf, module)


def apply(model: nn.Module, config: LoraConfig) -> list[str]:
    """Freezes the whole model, then wraps the target Linear layers; returns their names."""
    model.requires_grad_(False)
    targets = _targets(model, config.target_modules)
    for path in targets:
        base = cast(nn.Linear, model.get_submodule(path))
        _replace(model, path, LoRALinear(base, config.rank, config.alpha, config.dropout))
    return targets


def merge(model: nn.Module) -> nn.Module:
    """Folds every adapter into its base weight, in place."""
    adapted = [name for name, module in model.named_modules() if isinstance(module, LoRALinear)]
    for path in adapted:
        _replace(model, path, cast(LoRALinear, model.get_submodule(path)).merged())
    return model
