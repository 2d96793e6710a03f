"""`spec.task`: the trainer's configuration, handed to it verbatim as KUBETRAIN_TASK."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import ConfigDict, Field, model_validator

from kubetrain.api.base import CamelModel

MAX_HELD_OUT_FRACTION = 0.9
CAUSAL_LM_MESSAGE = (
    "spec.task.finetune.checkpointUri is required for type causal-lm: name the pre-trained Hugging Face model "
    "to start from"
)


class TaskType(StrEnum):
    TABULAR_CLASSIFICATION = "tabular-classification"
    IMAGE_CLASSIFICATION = "image-classification"
    TEXT_CLASSIFICATION = "text-classification"
    CAUSAL_LM = "causal-lm"


class ExportFormat(StrEnum):
    ONNX = "onnx"


class ArchitectureSpec(CamelModel):
    """Architecture knobs. Unset fields keep the trainer's own defaults, so only the knobs a user
    really chose travel in KUBETRAIN_TASK; each model family reads only its own."""

    hidden_sizes: list[int] | None = Field(
        default=None, min_length=1, description="Widths of the hidden layers of the tabular MLP, e.g. [128, 64]."
    )
    channels: list[int] | None = Field(
        default=None, min_length=1, description="Channels of each convolution block of the image CNN."
    )
    layers: int | None = Field(default=None, ge=1, description="Encoder layers of the text transformer.")
    d_model: int | None = Field(default=None, ge=8, description="Width of the text transformer; divisible by heads.")
    heads: int | None = Field(default=None, ge=1, description="Attention heads of the text transformer.")
    vocab_size: int | None = Field(default=None, ge=16, description="Hashed word vocabulary of the text model.")
    max_length: int | None = Field(default=None, ge=2, description="Tokens kept per text example.")
    dropout: float | None = Field(default=None, ge=0.0, lt=1.0, description="Dropout probability, in [0, 1).")


class LoraSpec(CamelModel):
    rank: int = Field(default=8, ge=1, description="Rank of the low-rank adapters.")
    alpha: float = Field(default=16.0, gt=0, description="LoRA scaling numerator (the update is scaled by alpha/rank).")
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0, description="Dropout on the adapters' input, in [0, 1).")
    target_modules: list[str] = Field(
        default_factory=list,
        description="Linear layers to adapt, by last name component (e.g. query, q_proj) or dotted path; empty "
        "adapts all (causal-lm: every linear layer but the output head).",
    )


class FinetuneSpec(CamelModel):
    checkpoint_uri: str = Field(
        min_length=1,
        description="URI of a model.safetensors exported by an earlier kubetrain job; for causal-lm, a Hugging "
        "Face model directory: file://, pvc://claim/path (mounted at /mnt/pvc/claim), s3://, gs:// or "
        "hf://org/name[@revision] (downloaded from the Hub; needs egress).",
    )
    lora: LoraSpec | None = Field(
        default=None, description="Train low-rank adapters instead of every weight; unset fine-tunes all weights."
    )


class CausalLMSpec(CamelModel):
    """The causal-lm task's own knobs; the classification tasks ignore them. Unset fields keep the
    trainer's defaults, as in ArchitectureSpec."""

    objective: Literal["instruction", "text"] | None = Field(
        default=None,
        description="instruction (default): supervised fine-tuning on JSONL prompt/response records, loss on the "
        "response; text: continued pretraining on JSONL text records or plain text.",
    )
    sequence_length: int | None = Field(default=None, ge=8, description="Tokens per training sequence (512).")
    packing: bool | None = Field(default=None, description="Pack examples end to end into full sequences (true).")
    gradient_accumulation_steps: int | None = Field(
        default=None, ge=1, description="Micro-batches of batchSize per optimizer step (1)."
    )
    warmup_steps: int | None = Field(default=None, ge=0, description="Optimizer steps of linear warmup (0).")
    schedule: Literal["cosine", "linear", "constant"] | None = Field(
        default=None, description="Learning-rate decay after warmup (cosine)."
    )
    max_grad_norm: float | None = Field(default=None, gt=0, description="Gradient clipping norm (1.0).")
    chat_template: str | None = Field(
        default=None, description="Jinja chat template; unset: the tokenizer's own, else a plain instruction format."
    )
    export_merged: bool | None = Field(
        default=None, description="Also export the LoRA adapter merged into the base weights (false)."
    )
    generation_examples: int | None = Field(
        default=None, ge=0, description="Test prompts answered greedily for exactMatch and rougeL (32)."
    )
    max_new_tokens: int | None = Field(default=None, ge=1, description="Longest generated answer in tokens (64).")
    base_model_license: str | None = Field(
        default=None, description="The base model's licence for the model card; unset: its README's license."
    )


class DivergenceSpec(CamelModel):
    max_loss: float | None = Field(
        default=None,
        gt=0,
        description="A batch loss above this fails the job with reason Diverged (NaN or infinite loss always does).",
    )
    check_every_steps: int | None = Field(
        default=None,
        ge=1,
        description="Steps between two divergence checks, each one all-reduce and host sync (10); also checked "
        "before every checkpoint and at each epoch's end. A divergence is found up to this many steps minus one "
        "late, still naming the step it happened at; 1 checks every step.",
    )


class TaskSpec(CamelModel):
    """Held-out fractions are checked together because each alone can be valid while the pair
    leaves too little to train on; the CRD rule and this validator say the same thing."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": f"self.validationFraction + self.testFraction < {MAX_HELD_OUT_FRACTION}",
                    "message": "spec.task.validationFraction + spec.task.testFraction must be below 0.9: "
                    "lower one of them so at least 10% of the rows are left for training",
                },
                {"rule": "self.type != 'causal-lm' || has(self.finetune)", "message": CAUSAL_LM_MESSAGE},
            ]
        }
    )

    type: TaskType = Field(description="What to train: the data format and the model family follow from it.")
    epochs: int = Field(default=5, ge=1, description="Passes over the training split.")
    batch_size: int = Field(default=64, ge=1, description="Examples per step per process (the DDP convention).")
    learning_rate: float = Field(default=1e-3, gt=0, description="Optimizer learning rate.")
    seed: int = Field(
        default=0, description="Seed of every random choice (split, init, shuffling), for reproducibility."
    )
    validation_fraction: float = Field(
        default=0.1, ge=0.0, lt=1.0, description="Fraction of the rows held out for validation, in [0, 1)."
    )
    test_fraction: float = Field(
        default=0.2, gt=0.0, lt=1.0, description="Fraction of the rows held out for the final metrics, in (0, 1)."
    )
    checkpoint_every_steps: int = Field(
        default=50, ge=1, description="Rank 0 writes a checkpoint to the output URI every this many steps."
    )
    progress_interval_seconds: int = Field(
        default=10, ge=1, description="Least seconds between two status.progress updates by the trainer."
    )
    model: ArchitectureSpec = Field(
        default_factory=ArchitectureSpec, description="Architecture knobs of the model family."
    )
    finetune: FinetuneSpec | None = Field(
        default=None, description="Start from an exported checkpoint instead of random weights."
    )
    divergence: DivergenceSpec = Field(
        default_factory=DivergenceSpec, description="When a run counts as diverged (never retried)."
    )
    causal_lm: CausalLMSpec | None = Field(
        default=None, description="Settings of type causal-lm (sequences, schedule, accumulation, export)."
    )
    export_formats: list[ExportFormat] | None = Field(
        default=None, max_length=1,
        description="Portable formats exported beside model.safetensors for runtimes without kubetrain's code "
        "(onnx: ONNX Runtime, Triton, KServe), each recorded with its digest in provenance.exports and the "
        "ModelVersion; classification tasks only (causal-lm always writes the Hugging Face folder layout).",
    )

    @model_validator(mode="after")
    def _room_to_train(self) -> TaskSpec:
        if self.validation_fraction + self.test_fraction >= MAX_HELD_OUT_FRACTION:
            raise ValueError(
                "validationFraction + testFraction must be below 0.9: lower one of them so at least 10% "
                "of the rows are left for training"
            )
        if self.type == TaskType.CAUSAL_LM and self.finetune is None:
            raise ValueError(CAUSAL_LM_MESSAGE)
        return self
