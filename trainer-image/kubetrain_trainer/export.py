"""The run's deliverables: merged weights as safetensors and a model card that ties them to the
exact data (digest), configuration and code that produced them."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors
from torch import nn

from kubetrain_trainer import lora, modelcard, portable, storage
from kubetrain_trainer.errors import InvalidConfig

WEIGHTS = "model.safetensors"
CARD = modelcard.CARD


def weights_bytes(model: nn.Module) -> bytes:
    state = {name: tensor.detach().to("cpu").contiguous() for name, tensor in lora.merge(model).state_dict().items()}
    return save_safetensors(state)


def parameters_digest(model: nn.Module) -> str:
    """sha256 over the state dict as trained (names and raw bytes, in name order). DDP keeps every
    rank's parameters identical, so the ranks' digests agree; a rank that trained on its own
    (no gradient synchronisation) shows up as a different digest in the model card."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().to("cpu").contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def load_weights(model: nn.Module, uri: str) -> None:
    """Loads an exported model into `model`; a mismatch is a configuration error (the fine-tune's
    model section must describe the checkpoint's architecture)."""
    try:
        state = load_safetensors(storage.read_bytes(uri))
    except (OSError, ValueError) as error:
        raise InvalidConfig(f"finetune.checkpointUri {uri}: cannot read safetensors weights ({error})") from error
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        raise InvalidConfig(f"finetune.checkpointUri {uri} does not fit the configured model: {error}") from error


def write(
    output_uri: str, model: nn.Module, card: dict[str, Any], formats: Sequence[str], example: torch.Tensor
) -> dict[str, Any]:
    """Writes weights, the portable `formats` (traced with `example`, a model-ready batch), then
    the card (last, so its presence means everything it names is complete)."""
    blob = weights_bytes(model)
    weights_uri = storage.join(output_uri, WEIGHTS)
    storage.write_bytes(weights_uri, blob)
    exports = {}
    for fmt in formats:
        exported = portable.onnx_bytes(model, example)
        uri = storage.join(output_uri, portable.FILES[fmt])
        storage.write_bytes(uri, exported)
        exports[fmt] = {"uri": uri, "sha256": hashlib.sha256(exported).hexdigest(), **portable.describe(fmt)}
    card = {
        **card,
        "weights": {"uri": weights_uri, "sha256": hashlib.sha256(blob).hexdigest(), "format": "safetensors"},
        **({"exports": exports} if exports else {}),
        "software": modelcard.software(torch=torch.__version__),
    }
    modelcard.write(storage.join(output_uri, CARD), card)
    return card
