"""Fine-tuning throughput of the causal-lm task: the trainer's own loop (kubetrain_trainer.llm.loop:
accumulation, schedule, clipping, divergence collective) on a Llama-style model with random
weights and random tokens, LoRA and full fine-tuning, in tokens/s and model FLOPs utilisation.

MFU counts matmul parameters only (embeddings are lookups) and leaves attention scores out, as the
usual estimate does: full fine-tuning does 6 FLOPs per parameter and token (forward 2, backward 4);
LoRA 4 (the frozen weights need gradients for activations, not for themselves), the adapters'
own FLOPs being negligible.

    .venv/bin/python bench/llm_finetune_throughput.py                      # CPU, toy size (fp32)
    python bench/llm_finetune_throughput.py --size 1b --device cuda         # bf16 autocast, fused AdamW

Not a test: it prints a table.
"""

from __future__ import annotations

import argparse
import tempfile
from typing import Any

import torch

from kubetrain_trainer.checkpoint import Checkpointer
from kubetrain_trainer.config import LoraConfig, TaskConfig
from kubetrain_trainer.environment import Topology
from kubetrain_trainer.llm import adapters
from kubetrain_trainer.llm.corpus import Batches
from kubetrain_trainer.llm.loop import LanguageModelLoop

SINGLE_PROCESS = Topology(world_size=1, rank=0, local_rank=-1, node_rank=0, nproc_per_node=1)
# Llama-style shapes: `1b` is TinyLlama-1.1B's (22 layers, 2048 wide, grouped-query attention).
SIZES: dict[str, dict[str, int]] = {
    "toy": {"hidden_size": 64, "intermediate_size": 172, "num_hidden_layers": 2, "num_attention_heads": 4,
            "num_key_value_heads": 2, "vocab_size": 512},
    "1b": {"hidden_size": 2048, "intermediate_size": 5632, "num_hidden_layers": 22, "num_attention_heads": 32,
           "num_key_value_heads": 4, "vocab_size": 32000},
}


def build(size: str, seq_len: int, device: torch.device, lora: bool) -> tuple[torch.nn.Module, int]:
    """The model on `device` and its matmul parameter count (the FLOPs estimate's N)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(**SIZES[size], max_position_embeddings=seq_len)
    with device:
        model = LlamaForCausalLM(config)
    matmul = sum(p.numel() for n, p in model.named_parameters() if "embed_tokens" not in n and p.dim() == 2)
    if lora:
        model, _ = adapters.adapt(model, LoraConfig(rank=16, alpha=32, target_modules=[]))
    return model, matmul


def measure(args: argparse.Namespace, lora: bool, device: torch.device) -> dict[str, Any]:
    torch.manual_seed(0)
    model, matmul = build(args.size, args.seq_len, device, lora)
    rows = args.batch_size * args.accumulation * args.steps
    ids = torch.randint(0, SIZES[args.size]["vocab_size"], (rows, args.seq_len))
    train = Batches(ids, ids.clone(), torch.ones_like(ids))
    task = TaskConfig.model_validate({
        "type": "causal-lm", "epochs": 1, "batchSize": args.batch_size, "learningRate": 2e-4,
        "checkpointEverySteps": 10**9, "finetune": {"checkpointUri": "file:///unused"},
        "causalLm": {"sequenceLength": args.seq_len, "gradientAccumulationSteps": args.accumulation},
    })
    with tempfile.TemporaryDirectory() as out:
        loop = LanguageModelLoop(model, train, Batches(ids[:0], ids[:0], ids[:0]), task, SINGLE_PROCESS, device,
                                 Checkpointer(out, trainable_only=lora))
        result = loop.run()
    flops_per_token = (4 if lora else 6) * matmul
    tokens = result.tokens_per_second
    return {
        "method": "lora" if lora else "full",
        "tokens/s": round(tokens, 1),
        "TFLOP/s": round(flops_per_token * tokens / 1e12, 3),
        "MFU": round(flops_per_token * tokens / (args.peak_tflops * 1e12), 4) if device.type == "cuda" else None,
        "matmul params (M)": round(matmul / 1e6, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="toy")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--seq-len", type=int, default=None, help="default: 64 (toy), 2048 (1b)")
    parser.add_argument("--batch-size", type=int, default=None, help="default: 8 (toy), 4 (1b)")
    parser.add_argument("--accumulation", type=int, default=1)
    parser.add_argument("--steps", type=int, default=20, help="optimizer steps per method (the first warms up)")
    parser.add_argument("--peak-tflops", type=float, default=989.0, help="peak dense bf16 TFLOP/s (H100 SXM: 989)")
    parser.add_argument("--methods", nargs="+", choices=["lora", "full"], default=["lora", "full"])
    args = parser.parse_args()
    args.seq_len = args.seq_len or (64 if args.size == "toy" else 2048)
    args.batch_size = args.batch_size or (8 if args.size == "toy" else 4)
    device = torch.device(args.device)
    print(f"size {args.size}, device {device} ({'bf16 autocast' if device.type == 'cuda' else 'fp32'}), "
          f"seq {args.seq_len}, batch {args.batch_size} x {args.accumulation}, {args.steps} steps")
    for method in args.methods:
        print(measure(args, method == "lora", device))


if __name__ == "__main__":
    main()
