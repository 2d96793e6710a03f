"""Fine-tuning throughput of the causal-lm task: the trainer's own loop (kubetrain_trainer.llm.loop:
accumulation, schedule, clipping, divergence checks) against a plain transformers/PyTorch loop on
the same Llama-style model (random weights, random tokens), LoRA and full fine-tuning, in tokens/s,
their ratio (median of interleaved pairs, with its spread) and model FLOPs utilisation.

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
import contextlib
import functools
import statistics
import tempfile
from typing import Any

import torch
from trainer_throughput import SINGLE_PROCESS, interleaved, samples_per_second

from kubetrain_trainer.checkpoint import Checkpointer
from kubetrain_trainer.config import LoraConfig, TaskConfig
from kubetrain_trainer.llm import adapters
from kubetrain_trainer.llm.corpus import Batches
from kubetrain_trainer.llm.loop import LanguageModelLoop

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


def plain_loop(model: torch.nn.Module, train: Batches, args: argparse.Namespace, device: torch.device) -> None:
    """The least a fine-tuning step can be, as a transformers user writes it: shuffled
    micro-batches, `model(..., labels=...).loss`, backward, gradient clipping, AdamW step."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=2e-4, fused=device.type == "cuda")
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext()
    model.train()
    for window in torch.randperm(len(train)).split(args.batch_size * args.accumulation):
        for micro in window.split(args.batch_size):
            rows = {k: v.to(device) for k, v in train.rows(micro).items()}
            with autocast:
                loss = model(**rows).loss
            (loss / args.accumulation).backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)


def kubetrain_loop(
    model: torch.nn.Module, train: Batches, args: argparse.Namespace, device: torch.device, lora: bool
) -> None:
    """`LanguageModelLoop.run` over the same data: its bookkeeping, divergence checks and final
    checkpoint included."""
    ids = train.input_ids
    task = TaskConfig.model_validate({
        "type": "causal-lm", "epochs": 1, "batchSize": args.batch_size, "learningRate": 2e-4,
        "checkpointEverySteps": 10**9, "finetune": {"checkpointUri": "file:///unused"},
        "causalLm": {"sequenceLength": args.seq_len, "gradientAccumulationSteps": args.accumulation},
    })
    with tempfile.TemporaryDirectory() as out:
        loop = LanguageModelLoop(model, train, Batches(ids[:0], ids[:0], ids[:0]), task, SINGLE_PROCESS, device,
                                 Checkpointer(out, trainable_only=lora))
        loop.run()


def measure(args: argparse.Namespace, lora: bool, device: torch.device) -> dict[str, Any]:
    """Interleaved runs of both loops on one model (alternating which goes first, so that load
    on a shared machine falls on both alike), after a warm-up run of each; medians and the
    spread of the per-pair ratio."""
    torch.manual_seed(0)
    model, matmul = build(args.size, args.seq_len, device, lora)
    rows = args.batch_size * args.accumulation * args.steps
    ids = torch.randint(0, SIZES[args.size]["vocab_size"], (rows, args.seq_len))
    train = Batches(ids, ids.clone(), torch.ones_like(ids))
    tokens = int(train.attention_mask.sum())
    # samples_per_second of the classifier bench, counting tokens as the samples.
    plain_run = functools.partial(
        samples_per_second, functools.partial(plain_loop, model, train, args, device), tokens, device, args.clock
    )
    ours_run = functools.partial(
        samples_per_second, functools.partial(kubetrain_loop, model, train, args, device, lora), tokens, device,
        args.clock,
    )
    plain_run(), ours_run()
    plains, ourss = interleaved(args.repeats, plain_run, ours_run)
    ratios = [o / p for o, p in zip(ourss, plains, strict=True)]
    flops_per_token = (4 if lora else 6) * matmul
    rate = statistics.median(ourss)
    return {
        "method": "lora" if lora else "full",
        "plain tokens/s": round(statistics.median(plains), 1),
        "kubetrain tokens/s": round(rate, 1),
        "ratio": round(statistics.median(ratios), 3),
        "ratio min-max": f"{min(ratios):.2f}-{max(ratios):.2f}",
        "best ratio": round(max(ourss) / max(plains), 3),
        "TFLOP/s": round(flops_per_token * rate / 1e12, 3),
        "MFU": round(flops_per_token * rate / (args.peak_tflops * 1e12), 4) if device.type == "cuda" else None,
        "matmul params (M)": round(matmul / 1e6, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="toy")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--seq-len", type=int, default=None, help="default: 64 (toy), 2048 (1b)")
    parser.add_argument("--batch-size", type=int, default=None, help="default: 8 (toy), 4 (1b)")
    parser.add_argument("--accumulation", type=int, default=1)
    parser.add_argument("--steps", type=int, default=20, help="optimizer steps per run")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved plain/kubetrain pairs per method")
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall", help="what a run's time is")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for both loops (0: torch's default)")
    parser.add_argument("--peak-tflops", type=float, default=989.0, help="peak dense bf16 TFLOP/s (H100 SXM: 989)")
    parser.add_argument("--methods", nargs="+", choices=["lora", "full"], default=["lora", "full"])
    args = parser.parse_args()
    args.seq_len = args.seq_len or (64 if args.size == "toy" else 2048)
    args.batch_size = args.batch_size or (8 if args.size == "toy" else 4)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(f"size {args.size}, device {device} ({'bf16 autocast' if device.type == 'cuda' else 'fp32'}), "
          f"threads {torch.get_num_threads()}, seq {args.seq_len}, batch {args.batch_size} x {args.accumulation}, "
          f"{args.steps} steps, {args.repeats} pairs, clock {args.clock}")
    for method in args.methods:
        print(measure(args, method == "lora", device), flush=True)


if __name__ == "__main__":
    main()
