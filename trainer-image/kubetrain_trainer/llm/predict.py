"""The generative predictor: a causal-lm fine-tune loaded back from its output location, the
base model plus the LoRA adapter (`adapter/`, with peft) or the fully fine-tuned `model/`, and
asked for greedy answers through llm.metrics.answer, the function the held-out exactMatch and
rougeL were scored with; so `evaluate()` on the run's test split reproduces them."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict

from kubetrain_trainer import data, storage
from kubetrain_trainer.config import TaskConfig
from kubetrain_trainer.errors import InvalidConfig, InvalidData
from kubetrain_trainer.llm import corpus, metrics, source
from kubetrain_trainer.llm.export import ADAPTER, MODEL

CPU = torch.device("cpu")


class Generation(BaseModel):
    model_config = ConfigDict(frozen=True)

    text: str


def _local(uri: str) -> Path:
    return storage.local_path(uri) if storage.is_local(uri) else storage.fetch_directory(uri)


@dataclass(frozen=True)
class GenerativePredictor:
    card: dict[str, Any]
    task: TaskConfig
    model: Any  # a transformers model, or a peft PeftModel around one
    tokenizer: Any

    @classmethod
    def load(cls, card: dict[str, Any], weights_digest: str | None = None) -> GenerativePredictor:
        """The adapter on its base model when the run trained one (what the held-out metrics
        scored), else the fully fine-tuned folder; refuses a folder whose files are not the
        card's (nor `weights_digest`, a ModelVersion's, when given) and a base model whose
        files changed."""
        from transformers import AutoModelForCausalLM, AutoTokenizer

        exports = card.get("exports", {})
        task = TaskConfig.model_validate(card["config"])
        _check(card["weights"], weights_digest)
        if ADAPTER in exports:
            from peft import PeftModel

            base = source.resolve(card["baseModel"]["uri"])
            if base.digest != card["baseModel"]["digest"]:
                raise InvalidConfig(f"base model {base.uri}: digest {base.digest} is not the card's "
                                    f"{card['baseModel']['digest']}; the adapter was trained on other weights")
            folder = _local(exports[ADAPTER]["uri"])
            base_model = AutoModelForCausalLM.from_pretrained(base.directory, dtype=torch.float32)
            model = PeftModel.from_pretrained(base_model, folder)
        elif MODEL in exports:
            folder = _local(exports[MODEL]["uri"])
            model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
        else:
            raise InvalidConfig(f"the model card names no {ADAPTER}/ or {MODEL}/ folder: {sorted(exports)}")
        tokenizer = AutoTokenizer.from_pretrained(folder)
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        model.eval()
        return cls(card=card, task=task, model=model, tokenizer=tokenizer)

    def predict(self, instances: list[Any]) -> list[Generation]:
        """Each instance a prompt string, or `{"prompt": ..., "system": ...}`."""
        return [
            Generation(text=metrics.answer(self.model, self.tokenizer, _record(i), self.task.causal_lm, CPU))
            for i in instances
        ]

    def predict_file(self, path: Path) -> list[Generation]:
        """A .jsonl file, one instance a line."""
        lines = data.decode(path.read_bytes(), str(path)).splitlines()
        try:
            return self.predict([json.loads(line) for line in lines if line.strip()])
        except json.JSONDecodeError as error:
            raise InvalidData(f"{path}: not JSON lines ({error.msg})") from error

    def evaluate(self, dataset_uri: str | None = None) -> dict[str, float]:
        """exactMatch and rougeL on the run's own test split, as the card reports them."""
        loaded = corpus.load(dataset_uri or self.card["data"]["uri"], self.task.causal_lm.objective)
        if loaded.sha256 != self.card["data"]["sha256"]:
            expected = self.card["data"]["sha256"]
            raise InvalidData(f"{loaded.uri}: sha256 {loaded.sha256} is not the training data's {expected}")
        test = corpus.split(loaded.records, self.task)[2]
        scores = metrics.answers(self.model, self.tokenizer, test, self.task.causal_lm, CPU)
        return {name: round(value, 6) for name, value in scores.items()}


def _check(weights: dict[str, str], expected: str | None) -> None:
    """The trained folder (the card's `weights`: the adapter, or the full model) is the card's."""
    digest = storage.content_digest(weights["uri"])
    for wanted in filter(None, (f"sha256:{weights['sha256']}", expected)):
        if digest != wanted:
            raise InvalidConfig(f"{weights['uri']}: {digest} is not the expected {wanted}")


def _record(instance: Any) -> corpus.Record:
    if isinstance(instance, str) and instance.strip():
        return corpus.Record(prompt=instance)
    if isinstance(instance, dict) and isinstance(instance.get("prompt"), str):
        system = instance.get("system")
        return corpus.Record(prompt=instance["prompt"], system=system if isinstance(system, str) else None)
    raise InvalidData(f'{instance!r}: expected a prompt string or {{"prompt": ..., "system": ...}}')
