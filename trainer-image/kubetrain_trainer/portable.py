"""Exports that serving runtimes read without this code (spec.task.exportFormats): ONNX through
torch.onnx's exporter (torch.export, then onnxscript), one graph per model family with a dynamic
batch dimension. The graph takes the model-ready tensor (preprocess.transform applied: standardised
float32 features or pixels, or int64 token ids) and returns the logits; the model card records the
recipe, so a runtime in any language can reproduce the inputs."""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

ONNX = "model.onnx"
FILES = {"onnx": ONNX}
def onnx_bytes(module: nn.Module, example: torch.Tensor) -> bytes:
    """The module as an ONNX model: input `input` (batch first, any batch size), output `logits`."""
    cpu = copy.deepcopy(module).to("cpu").eval()
    program: Any = torch.onnx.export(
        cpu, (example.to("cpu"),), dynamo=True, input_names=["input"], output_names=["logits"],
        dynamic_shapes=({0: torch.export.Dim("batch")},), verbose=False,
    )
    return bytes(program.model_proto.SerializeToString())


def describe(fmt: str) -> dict[str, str]:
    """The interface of an export, for the model card."""
    return {
        "format": fmt,
        "input": "input: the model-ready batch (the card's preprocessing applied), batch first",
        "output": "logits: one row per instance, one column per class in data.classes order",
    }
