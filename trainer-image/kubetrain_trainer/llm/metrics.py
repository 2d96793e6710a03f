"""Held-out metrics of a causal language model: token loss and perplexity on every split, and
where the data has references (instruction data: the responses), exact match and ROUGE-L of
greedy answers to the test prompts."""

from __future__ import annotations

import contextlib
import math
import re
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from kubetrain_trainer.config import CausalLMConfig
from kubetrain_trainer.llm import corpus

# exp() of a loss this high is already meaningless; the cap keeps the metric a finite JSON number.
MAX_LOG_PERPLEXITY = 50.0


def autocast(device: torch.device) -> contextlib.AbstractContextManager[Any]:
    """bf16 on GPUs (fp32 master weights stay in the model); fp32 on CPUs, which lack fast bf16."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def token_loss(model: nn.Module, rows: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed next-token cross-entropy over the labelled tokens, and their count: sums, so that
    gradient accumulation and ranks weight every token alike whatever each micro-batch holds."""
    with autocast(rows["input_ids"].device):
        logits = model(input_ids=rows["input_ids"], attention_mask=rows["attention_mask"]).logits
    labels = rows["labels"][:, 1:]
    loss = F.cross_entropy(
        logits[:, :-1].flatten(0, 1).float(), labels.flatten(), ignore_index=corpus.IGNORE, reduction="sum"
    )
    return loss, (labels != corpus.IGNORE).sum()


def perplexity(loss: float) -> float:
    return math.exp(min(loss, MAX_LOG_PERPLEXITY))


@torch.no_grad()
def language_modelling(
    model: nn.Module, split: corpus.Batches, device: torch.device, batch_size: int
) -> dict[str, float]:
    was_training = model.training
    model.eval()
    total, tokens = 0.0, 0
    for start in range(0, len(split), batch_size):
        rows = {k: v.to(device) for k, v in split.rows(slice(start, start + batch_size)).items()}
        loss, count = token_loss(model, rows)
        total, tokens = total + loss.item(), tokens + int(count.item())
    model.train(was_training)
    mean = total / max(tokens, 1)
    return {"loss": mean, "perplexity": perplexity(mean)}


def normalise(text: str) -> str:
    return " ".join(text.lower().split())


def rouge_l(prediction: str, reference: str) -> float:
    """ROUGE-L F1 over lower-cased words: the longest common subsequence, as rouge-score computes it."""
    a, b = re.findall(r"\w+", prediction.lower()), re.findall(r"\w+", reference.lower())
    if not a or not b:
        return float(a == b)
    previous = [0] * (len(b) + 1)
    for word in a:
        current = [0]
        for j, other in enumerate(b):
            current.append(previous[j] + 1 if word == other else max(previous[j + 1], current[j]))
        previous = current
    lcs = previous[-1]
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(a), lcs / len(b)
    return 2 * precision * recall / (precision + recall)


@torch.no_grad()
def answer(model: Any, tokenizer: Any, record: corpus.Record, config: CausalLMConfig, device: torch.device) -> str:
    """The greedy answer to one prompt, formatted with the tokenizer's chat template: what the
    held-out exactMatch and rougeL score and what the generative predictor returns
    (kubetrain_trainer.llm.predict)."""
    prompt = tokenizer(corpus.render_prompt(tokenizer, record), add_special_tokens=False, return_tensors="pt")
    prompt = {k: v.to(device) for k, v in prompt.items()}
    with autocast(device):
        output = model.generate(
            **prompt, max_new_tokens=config.max_new_tokens, do_sample=False,
            pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
        )
    return str(tokenizer.decode(output[0, prompt["input_ids"].shape[1] :], skip_special_tokens=True))


@torch.no_grad()
def answers(
    model: Any, tokenizer: Any, records: list[corpus.Record], config: CausalLMConfig, device: torch.device
) -> dict[str, float]:
    """exactMatch and rougeL of greedy answers to the first `generationExamples` test prompts
    (`model`: a transformers or peft model, for its `generate`)."""
    chosen = [r for r in records if r.response is not None][: config.generation_examples]
    if not chosen:
        return {}
    was_training = model.training
    model.eval()
    exact = rouge = 0.0
    for record in chosen:
        text = answer(model, tokenizer, record, config, device)
        exact += float(normalise(text) == normalise(record.response or ""))
        rouge += rouge_l(text, record.response or "")
    model.train(was_training)
    return {"exactMatch": exact / len(chosen), "rougeL": rouge / len(chosen)}
