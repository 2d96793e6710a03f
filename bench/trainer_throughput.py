"""Training throughput of the reference models: the kubetrain loop against a minimal PyTorch loop
on the same model and data, so the loop's overhead (per-step divergence collective, progress,
checkpoint) shows as a ratio. On CUDA it adds bf16 + fused AdamW, optionally torch.compile, and
the transformer's model FLOPs utilisation: 6 * params * tokens / peak, counting only the
parameters that do matmuls (embedding lookups are not FLOPs), as the usual estimate does.

    .venv/bin/python bench/trainer_throughput.py --seconds 3
    python bench/trainer_throughput.py --d-model 512 --layers 6 --seq-len 256 --batch-size 64 --compile

Not a test: it prints a table.
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from kubetrain_trainer import models
from kubetrain_trainer.checkpoint import Checkpointer
from kubetrain_trainer.config import TaskConfig
from kubetrain_trainer.environment import Topology
from kubetrain_trainer.loop import TrainingLoop
from kubetrain_trainer.preprocess import Prepared

BATCHES_PER_EPOCH = 50
SINGLE_PROCESS = Topology(world_size=1, rank=0, local_rank=-1, node_rank=0, nproc_per_node=1)


@dataclass(frozen=True)
class Case:
    name: str
    task: TaskConfig
    inputs: Callable[[int], torch.Tensor]
    num_classes: int
    tokens_per_sample: int  # 0 where FLOPs utilisation is not reported


def cases(args: argparse.Namespace) -> list[Case]:
    common: dict[str, Any] = {"batchSize": args.batch_size, "epochs": 1, "checkpointEverySteps": 10**9,
                              "validationFraction": 0.0, "progressIntervalSeconds": 10**9}
    text_model = {
        "dModel": args.d_model,
        "layers": args.layers,
        "heads": args.heads,
        "maxLength": args.seq_len,
        "dropout": 0.0,
    }
    return [
        Case(
            "mlp",
            TaskConfig.model_validate({"type": "tabular-classification", **common}),
            lambda n: torch.randn(n, 20),
            3,
            0,
        ),
        Case(
            "cnn",
            TaskConfig.model_validate({"type": "image-classification", **common}),
            lambda n: torch.randn(n, 1, 8, 8),
            10,
            0,
        ),
        Case(
            "transformer",
            TaskConfig.model_validate({"type": "text-classification", "model": text_model, **common}),
            lambda n: torch.randint(1, 4096, (n, args.seq_len)),
            3,
            args.seq_len,
        ),
    ]


def plain_loop(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int, device: torch.device, seconds: float, warmup: int
) -> float:
    """The least a training step can be: shuffled batch, forward, loss, backward, AdamW step."""
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=1e-3, fused=device.type == "cuda"
    )
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext()
    model.train()
    steps, samples, began = 0, 0, 0.0
    while True:
        for rows in torch.randperm(len(y)).split(batch):
            if steps == warmup:
                if device.type == "cuda":
                    torch.cuda.synchronize()
                began, samples = time.perf_counter(), 0
            with autocast:
                loss = F.cross_entropy(
                    model(x[rows].to(device, non_blocking=True)).float(), y[rows].to(device, non_blocking=True)
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            steps += 1
            samples += len(rows)
            if steps > warmup and time.perf_counter() - began >= seconds:
                if device.type == "cuda":
                    torch.cuda.synchronize()
                return samples / (time.perf_counter() - began)


def kubetrain_loop(
    case: Case, model: nn.Module, x: torch.Tensor, y: torch.Tensor, device: torch.device, epochs: int
) -> float:
    empty = (x[:0], y[:0])
    data = Prepared(
        train=(x, y),
        validation=empty,
        test=empty,
        input_shape=tuple(x.shape[1:]),
        num_classes=case.num_classes,
        recipe={},
    )
    task = case.task.model_copy(update={"epochs": epochs})
    with tempfile.TemporaryDirectory() as output:
        loop = TrainingLoop(
            model, data, task, SINGLE_PROCESS, device, Checkpointer(output), progress_gate=lambda _: False
        )
        return loop.run().samples_per_second


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--seconds", type=float, default=3.0, help="timed duration of each plain run")
    parser.add_argument("--warmup", type=int, default=10, help="untimed steps first")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--d-model", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--seq-len", type=int, default=32)
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
    parser.add_argument(
        "--compile", action="store_true", help="CUDA only: also time torch.compile(model) in the plain loop"
    )
    parser.add_argument("--peak-tflops", type=float, default=989.0, help="peak dense bf16 TFLOP/s (H100 SXM: 989)")
    args = parser.parse_args()
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    cuda = device.type == "cuda"
    print(f"device={device} torch={torch.__version__} threads={torch.get_num_threads()} batch={args.batch_size}"
          + (" precision=bf16-autocast optimizer=fused-AdamW" if cuda else " precision=fp32"))
    header = f"{'model':<12}{'params':>11}{'plain/s':>12}{'kubetrain/s':>13}{'ratio':>8}"
    header += f"{'compiled/s':>12}{'MFU':>8}" if cuda else ""
    print(header)
    for case in cases(args):
        rows = args.batch_size * BATCHES_PER_EPOCH
        x, y = case.inputs(rows), torch.randint(0, case.num_classes, (rows,))
        torch.manual_seed(0)
        model = models.build(case.task, tuple(x.shape[1:]), case.num_classes).to(device)
        params = sum(p.numel() for p in model.parameters())
        embedding = sum(p.numel() for m in model.modules() if isinstance(m, nn.Embedding) for p in m.parameters())
        plain = plain_loop(model, x, y, args.batch_size, device, args.seconds, args.warmup)
        # About as many steps as the plain run took, after one warm-up epoch.
        epochs = max(1, round(plain * args.seconds / rows))
        kubetrain_loop(case, model, x, y, device, 1)
        ours = kubetrain_loop(case, model, x, y, device, epochs)
        line = f"{case.name:<12}{params:>11,}{plain:>12,.0f}{ours:>13,.0f}{ours / plain:>8.2f}"
        if cuda:
            compiled = (
                plain_loop(torch.compile(model), x, y, args.batch_size, device, args.seconds, args.warmup)
                if args.compile
                else None
            )
            best = max(plain, ours, compiled or 0.0)
            mfu = (
                6 * (params - embedding) * case.tokens_per_sample * best / (args.peak_tflops * 1e12)
                if case.tokens_per_sample
                else None
            )
            line += f"{compiled:>12,.0f}" if compiled else f"{'-':>12}"
            line += f"{mfu:>8.1%}" if mfu is not None else f"{'-':>8}"
        print(line, flush=True)


if __name__ == "__main__":
    main()
