"""The model to train: the base model and its tokenizer from the resolved directory, then LoRA
adapters through peft (`finetune.lora`: rank, alpha, dropout, target modules; empty targets every
linear layer but the output head, as the built-in models' LoRA does) or, without `lora`, every
weight (full fine-tuning)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from kubetrain_trainer.config import LoraConfig, TaskConfig
from kubetrain_trainer.errors import InvalidConfig
from kubetrain_trainer.llm import corpus
from kubetrain_trainer.llm.source import BaseModel


@dataclass(frozen=True)
class Loaded:
    model: nn.Module  # a peft PeftModel with LoRA, else the transformers model itself
    tokenizer: Any
    lora_targets: list[str] | None  # None: full fine-tuning


def load(base: BaseModel, task: TaskConfig) -> Loaded:
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # progress bars would flood the pod's structured log
    tokenizer = AutoTokenizer.from_pretrained(base.directory)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    corpus.use_chat_template(tokenizer, task.causal_lm)
    # fp32 master weights: on a GPU the loop computes in bf16 autocast (kubetrain_trainer.loop),
    # and CPUs have no fast bf16 kernels.
    model = AutoModelForCausalLM.from_pretrained(base.directory, dtype=torch.float32)
    lora = task.finetune.lora if task.finetune else None
    if lora is None:
        return Loaded(model, tokenizer, None)
    adapted, targets = adapt(model, lora)
    return Loaded(adapted, tokenizer, targets)


def adapt(model: nn.Module, lora: LoraConfig) -> tuple[nn.Module, list[str]]:
    """Wraps `model` in peft's LoRA (only the adapters train); returns it and the adapted module names."""
    from peft import LoraConfig as PeftLoraConfig
    from peft import get_peft_model

    config = PeftLoraConfig(
        r=lora.rank,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=lora.target_modules or "all-linear",
        task_type="CAUSAL_LM",
    )
    try:
        adapted = get_peft_model(model, config)
    except ValueError as error:
        raise InvalidConfig(f"finetune.lora.targetModules {lora.target_modules}: {error}") from error
    return adapted, sorted(adapted.peft_config["default"].target_modules)
