"""The trainer's configuration: `spec.task` of the TrainingJob, passed as JSON in KUBETRAIN_TASK.

Unknown keys are rejected rather than ignored, because a misspelt key silently falling back to a
default is a training run wasted; the error names the key.
"""

from __future__ import annotations

from typing import Literal, cast

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic.alias_generators import to_camel

from kubetrain_trainer.errors import InvalidConfig

# The model family, which also fixes the data format (see kubetrain_trainer.data).
Family = Literal["tabular", "image", "text"]


class _Camel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)


class ModelConfig(_Camel):
    """Architecture knobs; each model family reads only its own."""

    hidden_sizes: list[int] = Field(default_factory=lambda: [128, 64], min_length=1)  # MLP
    channels: list[int] = Field(default_factory=lambda: [16, 32], min_length=1)  # CNN
    layers: int = Field(2, ge=1)  # transformer encoder layers
    d_model: int = Field(64, ge=8)
    heads: int = Field(4, ge=1)
    vocab_size: int = Field(4096, ge=16)  # hashed word vocabulary of the text model
    max_length: int = Field(32, ge=2)  # tokens per text example
    dropout: float = Field(0.1, ge=0.0, lt=1.0)

    @model_validator(mode="after")
    def _heads_divide_width(self) -> ModelConfig:
        if self.d_model % self.heads:
            raise ValueError(f"model.dModel ({self.d_model}) must be divisible by model.heads ({self.heads})")
        return self


class LoraConfig(_Camel):
    rank: int = Field(8, ge=1)
    alpha: float = Field(16.0, gt=0)
    dropout: float = Field(0.0, ge=0.0, lt=1.0)  # on the adapter's input only, as peft does
    # Names (last path component, e.g. "query", or a full dotted path) of the Linear layers to
    # adapt; empty adapts every Linear layer.
    target_modules: list[str] = Field(default_factory=list)


class FinetuneConfig(_Camel):
    # A model.safetensors exported by this trainer; for causal-lm, a Hugging Face model directory
    # (file://, pvc://, s3://, gs://, hf://org/name[@revision]; see kubetrain_trainer.llm.source).
    checkpoint_uri: str = Field(min_length=1)
    lora: LoraConfig | None = None


class CausalLMConfig(_Camel):
    """The causal-lm task's own knobs (kubetrain_trainer.llm); the classification tasks ignore them."""

    objective: Literal["instruction", "text"] = "instruction"  # SFT on prompt/response pairs, or raw text
    sequence_length: int = Field(512, ge=8)
    packing: bool = True  # concatenate examples into full sequences (no padding compute)
    gradient_accumulation_steps: int = Field(1, ge=1)
    warmup_steps: int = Field(0, ge=0)
    schedule: Literal["cosine", "linear", "constant"] = "cosine"
    max_grad_norm: float | None = Field(1.0, gt=0)
    chat_template: str | None = None  # Jinja; unset: the tokenizer's own, else a plain instruction template
    export_merged: bool = False  # also write the adapter merged into the base weights
    generation_examples: int = Field(32, ge=0)  # test prompts answered greedily for exactMatch and rougeL
    max_new_tokens: int = Field(64, ge=1)
    base_model_license: str | None = None  # unset: the `license:` of the model directory's README.md


class DivergenceConfig(_Camel):
    max_loss: float | None = Field(None, gt=0)  # a batch loss above this fails the run (NaN/inf always do)
    # Steps between two checks (also before every checkpoint and at every epoch's end): one
    # all-reduce and host sync per check instead of per step; see kubetrain_trainer.divergence.
    check_every_steps: int = Field(10, ge=1)


class TaskConfig(_Camel):
    type: Literal["tabular-classification", "image-classification", "text-classification", "causal-lm"]
    epochs: int = Field(5, ge=1)
    batch_size: int = Field(64, ge=1)  # per process, the DDP convention
    learning_rate: float = Field(1e-3, gt=0)
    seed: int = 0
    validation_fraction: float = Field(0.1, ge=0.0, lt=1.0)
    test_fraction: float = Field(0.2, gt=0.0, lt=1.0)
    checkpoint_every_steps: int = Field(50, ge=1)
    progress_interval_seconds: float = Field(10.0, ge=0.0)
    model: ModelConfig = Field(default_factory=ModelConfig)
    finetune: FinetuneConfig | None = None
    divergence: DivergenceConfig = Field(default_factory=DivergenceConfig)
    causal_lm: CausalLMConfig = Field(default_factory=CausalLMConfig)
    # Formats written beside model.safetensors that serving runtimes read without this code
    # (kubetrain_trainer.portable); causal-lm always writes the Hugging Face folder layout.
    export_formats: list[Literal["onnx"]] = Field(default_factory=list)

    @model_validator(mode="after")
    def _room_to_train(self) -> TaskConfig:
        if self.validation_fraction + self.test_fraction >= 0.9:
            raise ValueError("validationFraction + testFraction must leave at least 10% of the rows for training")
        if self.type == "causal-lm" and self.finetune is None:
            raise ValueError("causal-lm needs finetune.checkpointUri: the pre-trained model to start from")
        return self

    @property
    def family(self) -> Family:
        return cast(Family, self.type.removesuffix("-classification"))

    def resolved(self) -> dict[str, object]:
        """The configuration with every default filled in, as the CRD spells it (for the model card)."""
        return self.model_dump(mode="json", by_alias=True)


def parse_task(raw: str | None) -> TaskConfig:
    if not raw:
        raise InvalidConfig("KUBETRAIN_TASK is not set: the trainer needs the job's spec.task as JSON")
    try:
        return TaskConfig.model_validate_json(raw)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'task'}: {e['msg']}" for e in error.errors()
        )
        raise InvalidConfig(f"invalid spec.task: {problems}") from error
