"""Training throughput of the reference models: the kubetrain loop against a minimal PyTorch loop
on the same model and data, so the loop's overhead (divergence checks, progress, checkpoint) shows
as a ratio. Runs of the two loops alternate, several times, and the ratio is the median of the
pairs: on a shared machine a single pair can be off by 20 %. On CUDA both loops use bf16 autocast
and fused AdamW, `--compile` runs both on torch.compile(model), and the transformer's model FLOPs
utilisation is shown: 6 * params * tokens / peak, counting only the parameters that do matmuls
(embedding lookups are not FLOPs), as the usual estimate does.

    .venv/bin/python bench/trainer_throughput.py                     # CPU, 2 threads, 21 pairs
    .venv/bin/python bench/trainer_throughput.py --threads 1 --clock cpu --noise-floor   # a shared machine
    python bench/trainer_throughput.py --d-model 512 --layers 6 --seq-len 256 --batch-size 64 --compile

Not a test: it prints a table.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

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
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int, device: torch.device, epochs: int
) -> None:
    """The least a training step can be: shuffled batch, forward, loss, backward, AdamW step, over
    data already on the device (as the kubetrain loop keeps it)."""
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=1e-3, fused=device.type == "cuda"
    )
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext()
    x, y = x.to(device), y.to(device)
    model.train()
    for _ in range(epochs):
        for rows in torch.randperm(len(y), device=device).split(batch):
            with autocast:
                loss = F.cross_entropy(model(x[rows]).float(), y[rows])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()


def kubetrain_loop(
    case: Case, model: nn.Module, x: torch.Tensor, y: torch.Tensor, device: torch.device, epochs: int
) -> None:
    """`TrainingLoop.run` over `epochs` epochs: its bookkeeping, divergence checks and final
    checkpoint included."""
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
        loop.run()


def samples_per_second(run: Callable[[], None], samples: int, device: torch.device, clock: str) -> float:
    """`clock` wall: elapsed time; cpu: this process's CPU time, which load from other processes
    on a shared machine barely moves (with one thread; more threads add their spin-waits)."""
    now = time.perf_counter if clock == "wall" else time.process_time
    _synchronize(device)
    began = now()
    run()
    _synchronize(device)
    return samples / (now() - began)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def interleaved(repeats: int, runs: list[Callable[[], float]]) -> list[list[float]]:
    """`repeats` rounds of every run, in an order that alternates, so that load that comes and
    goes on a shared machine falls on all loops alike; each round gives one ratio. The table also
    shows the ratio of each loop's best run ("best"): the run least disturbed by other work, as
    timeit uses."""
    figures: list[list[float]] = [[] for _ in runs]
    for repeat in range(repeats):
        order = list(range(len(runs)))
        for index in order[::-1] if repeat % 2 else order:
            figures[index].append(runs[index]())
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--seconds", type=float, default=0.5, help="about how long each timed run lasts")
    parser.add_argument("--repeats", type=int, default=21, help="interleaved plain/kubetrain pairs per model")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--d-model", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--seq-len", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for both loops (0: torch's default)")
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall", help="what a run's time is")
    parser.add_argument("--compile", action="store_true", help="run both loops on torch.compile(model)")
    parser.add_argument("--noise-floor", action="store_true",
                        help="also time the plain loop a second time in each round: A/A, the ratio of two identical "
                             "loops, is what this machine can resolve")
    parser.add_argument("--models", nargs="+", choices=["mlp", "cnn", "transformer"],
                        default=["mlp", "cnn", "transformer"])
    parser.add_argument("--peak-tflops", type=float, default=989.0, help="peak dense bf16 TFLOP/s (H100 SXM: 989)")
    args = parser.parse_args()
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    cuda = device.type == "cuda"
    print(f"device={device} torch={torch.__version__} threads={torch.get_num_threads()} batch={args.batch_size} "
          f"repeats={args.repeats} compile={args.compile} clock={args.clock}"
          + (" precision=bf16-autocast optimizer=fused-AdamW" if cuda else " precision=fp32"))
    header = f"{'model':<12}{'params':>11}{'plain/s':>12}{'kubetrain/s':>13}{'ratio':>8}{'min-max':>13}{'best':>7}"
    header += f"{'A/A':>8}{'min-max':>13}" if args.noise_floor else ""
    header += f"{'MFU':>8}" if cuda else ""
    print(header)
    for case in cases(args):
        if case.name not in args.models:
            continue
        rows = args.batch_size * BATCHES_PER_EPOCH
        x, y = case.inputs(rows), torch.randint(0, case.num_classes, (rows,))
        torch.manual_seed(0)
        model = models.build(case.task, tuple(x.shape[1:]), case.num_classes).to(device)
        params = sum(p.numel() for p in model.parameters())
        embedding = sum(p.numel() for m in model.modules() if isinstance(m, nn.Embedding) for p in m.parameters())
        run_model = cast(nn.Module, torch.compile(model)) if args.compile else model
        # Warm-up (and compilation) in both loops, then as many epochs as take about --seconds.
        kubetrain_loop(case, run_model, x, y, device, 1)
        rate = samples_per_second(
            lambda: plain_loop(run_model, x, y, args.batch_size, device, 1), rows, device, "wall"
        )
        epochs = max(1, round(rate * args.seconds / rows))
        def plain_run() -> float:
            return samples_per_second(
                lambda: plain_loop(run_model, x, y, args.batch_size, device, epochs), epochs * rows, device, args.clock
            )

        def kubetrain_run() -> float:
            return samples_per_second(
                lambda: kubetrain_loop(case, run_model, x, y, device, epochs), epochs * rows, device, args.clock
            )

        plains, ourss, *again = interleaved(
            args.repeats, [plain_run, kubetrain_run] + ([plain_run] if args.noise_floor else [])
        )
        ratios = [o / p for o, p in zip(ourss, plains, strict=True)]
        plain, ours = statistics.median(plains), statistics.median(ourss)
        line = (f"{case.name:<12}{params:>11,}{plain:>12,.0f}{ours:>13,.0f}{statistics.median(ratios):>8.3f}"
                f"{f'{min(ratios):.2f}-{max(ratios):.2f}':>13}{max(ourss) / max(plains):>7.3f}")
        if again:
            floor = [a / p for a, p in zip(again[0], plains, strict=True)]
            line += f"{statistics.median(floor):>8.3f}{f'{min(floor):.2f}-{max(floor):.2f}':>13}"
        if cuda:
            mfu = 6 * (params - embedding) * case.tokens_per_sample * max(plain, ours) / (args.peak_tflops * 1e12)
            line += f"{mfu:>8.1%}" if case.tokens_per_sample else f"{'-':>8}"
        print(line, flush=True)


if __name__ == "__main__":
    main()
