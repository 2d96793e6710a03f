"""The causal-lm task's data, from file to training tensors.

Two objectives read two formats: `instruction` (supervised fine-tuning) reads JSONL records with
`prompt` and `response` (and an optional `system`), rendered by the tokenizer's chat template with
the loss on the response tokens only; `text` (continued pretraining) reads JSONL records with a
`text` field, or any other file as plain text whose blank-line separated paragraphs are the
documents, with the loss on every token. Examples are packed end to end into full sequences (no
compute spent on padding) unless `causalLm.packing` is off, when each is cut or padded alone.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
from dataclasses import dataclass
from typing import Any

import torch

from kubetrain_trainer import data, profile
from kubetrain_trainer.config import CausalLMConfig, TaskConfig
from kubetrain_trainer.errors import InvalidConfig, InvalidData

IGNORE = -100  # the label of a token without loss (prompt, padding), as torch's cross_entropy skips it
# For a tokenizer without a chat template (most base models): a plain instruction format.
DEFAULT_CHAT_TEMPLATE = (
    "{% if bos_token %}{{ bos_token }}{% endif %}"
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ message['content'] }}\n\n"
    "{% elif message['role'] == 'user' %}### Instruction:\n{{ message['content'] }}\n\n### Response:\n"
    "{% else %}{{ message['content'] }}{{ eos_token }}{% endif %}"
    "{% endfor %}"
)


@dataclass(frozen=True)
class Record:
    """One example: `text` for pretraining; `prompt`/`response` (and `system`) for instructions."""

    text: str | None = None
    prompt: str | None = None
    response: str | None = None
    system: str | None = None


@dataclass(frozen=True)
class Corpus:
    uri: str
    sha256: str
    records: list[Record]

    def audit(self, tokenizer: Any) -> dict[str, Any]:
        """Digest and profile for provenance; tokens are counted with the model's own tokenizer."""
        texts = [" ".join(filter(None, (r.system, r.prompt, r.response, r.text))) for r in self.records]
        return {"uri": self.uri, "sha256": self.sha256, "rows": len(self.records),
                "profile": profile.texts(texts, tokenizer.tokenize)}


@dataclass(frozen=True)
class Encoded:
    """Token ids with their labels: IGNORE where no loss is taken."""

    ids: list[int]
    labels: list[int]


@dataclass(frozen=True)
class Batches:
    """A split as padded tensors of shape (rows, length), in memory like the other tasks' data."""

    input_ids: torch.Tensor
    labels: torch.Tensor
    attention_mask: torch.Tensor

    def __len__(self) -> int:
        return int(self.input_ids.shape[0])

    def rows(self, index: torch.Tensor | slice) -> dict[str, torch.Tensor]:
        return {"input_ids": self.input_ids[index], "labels": self.labels[index],
                "attention_mask": self.attention_mask[index]}


def load(uri: str, objective: str) -> Corpus:
    raw = data.read(uri)
    text = data.decode(raw, uri)
    is_jsonl = uri.endswith((".jsonl", ".json")) or objective == "instruction"
    records = _jsonl(text, uri, objective) if is_jsonl else _paragraphs(text)
    if not records:
        raise InvalidData(f"{uri}: no examples (expected {_expected(objective)})")
    return Corpus(uri, hashlib.sha256(raw).hexdigest(), records)


def _expected(objective: str) -> str:
    if objective == "instruction":
        return "JSONL records with 'prompt' and 'response' strings"
    return "JSONL records with a 'text' string, or plain text"


def _jsonl(text: str, uri: str, objective: str) -> list[Record]:
    fields = ("prompt", "response") if objective == "instruction" else ("text",)
    records = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as error:
            raise InvalidData(f"{uri}:{number}: not JSON ({error.msg})") from None
        if not isinstance(item, dict) or not all(isinstance(item.get(f), str) and item[f].strip() for f in fields):
            raise InvalidData(f"{uri}:{number}: expected {_expected(objective)}")
        system = item.get("system") if isinstance(item.get("system"), str) else None
        records.append(Record(**{f: item[f] for f in fields}, system=system))
    return records


def _paragraphs(text: str) -> list[Record]:
    return [Record(text=block.strip()) for block in text.split("\n\n") if block.strip()]


def split(records: list[Record], task: TaskConfig) -> tuple[list[Record], list[Record], list[Record]]:
    """Seeded train/validation/test split of the examples (before packing, so no example is in two splits)."""
    order = list(range(len(records)))
    random.Random(task.seed).shuffle(order)
    n_test = max(1, round(len(order) * task.test_fraction))
    n_validation = round(len(order) * task.validation_fraction)
    if len(order) - n_test - n_validation < 1:
        raise InvalidData(f"{len(order)} examples leave none to train on after the held-out splits")
    pick = [records[i] for i in order]
    return pick[n_test + n_validation :], pick[n_test : n_test + n_validation], pick[:n_test]


def digest(records: list[Record]) -> str:
    """`sha256:<hex>` of the examples as JSON lines: names the held-out set in the model card."""
    lines = "".join(json.dumps(dataclasses.asdict(r), sort_keys=True) + "\n" for r in records)
    return "sha256:" + hashlib.sha256(lines.encode()).hexdigest()


def use_chat_template(tokenizer: Any, config: CausalLMConfig) -> None:
    """The configured template wins; then the tokenizer's own; then DEFAULT_CHAT_TEMPLATE. The
    tokenizer is exported with whichever was used, so inference formats prompts the same way."""
    if config.chat_template:
        tokenizer.chat_template = config.chat_template
    elif not tokenizer.chat_template:
        tokenizer.chat_template = DEFAULT_CHAT_TEMPLATE


def prompt_messages(record: Record) -> list[dict[str, str]]:
    messages = [{"role": "system", "content": record.system}] if record.system else []
    return [*messages, {"role": "user", "content": record.prompt or ""}]


def render_prompt(tokenizer: Any, record: Record) -> str:
    return str(tokenizer.apply_chat_template(prompt_messages(record), tokenize=False, add_generation_prompt=True))


def encode(tokenizer: Any, record: Record) -> Encoded:
    if record.text is not None:
        ids = [*tokenizer(record.text, add_special_tokens=True)["input_ids"], tokenizer.eos_token_id]
        return Encoded(ids, list(ids))
    # The prompt and the response are tokenised apart so the boundary between them, where the
    # loss starts, is exact whatever the tokenizer would merge across it.
    prompt = render_prompt(tokenizer, record)
    conversation = [*prompt_messages(record), {"role": "assistant", "content": record.response or ""}]
    full = str(tokenizer.apply_chat_template(conversation, tokenize=False))
    if not full.startswith(prompt):
        raise InvalidConfig(
            "the chat template does not render a conversation as its prompt followed by the response; "
            "set causalLm.chatTemplate to one that does"
        )
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    response_ids = tokenizer(full[len(prompt) :], add_special_tokens=False)["input_ids"]
    return Encoded([*prompt_ids, *response_ids], [IGNORE] * len(prompt_ids) + list(response_ids))


def batches(tokenizer: Any, records: list[Record], config: CausalLMConfig) -> Batches:
    encoded = [encode(tokenizer, r) for r in records]
    length = config.sequence_length
    if config.packing:
        ids = [t for e in encoded for t in e.ids]
        labels = [t for e in encoded for t in e.labels]
        rows = [Encoded(ids[i : i + length], labels[i : i + length]) for i in range(0, len(ids), length)]
    else:
        rows = [Encoded(e.ids[:length], e.labels[:length]) for e in encoded]
    width = max((len(r.ids) for r in rows), default=1)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    out = Batches(
        torch.full((len(rows), width), pad, dtype=torch.long),
        torch.full((len(rows), width), IGNORE, dtype=torch.long),
        torch.zeros((len(rows), width), dtype=torch.long),
    )
    for i, row in enumerate(rows):
        out.input_ids[i, : len(row.ids)] = torch.tensor(row.ids)
        out.labels[i, : len(row.ids)] = torch.tensor(row.labels)
        out.attention_mask[i, : len(row.ids)] = 1
    return out
