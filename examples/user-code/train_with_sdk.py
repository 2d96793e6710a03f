"""A user's own DDP training script, run by torchrun in a TrainingJob, reporting through the
kubetrain SDK: progress and live metrics into status, checkpoints into status.lastCheckpoint, the
data set it read (digest and profile), the exported model (digest and model card) and the final
metrics that the job's promotion gates judge. Every SDK call is safe on every rank: only global
rank 0 reports; outside a TrainingJob the SDK says once that it reports nothing.

    torchrun --nproc-per-node=2 train_with_sdk.py --data file:///data/churn.csv --output file:///out/churn
    (in a TrainingJob, --data and --output default to spec.dataset.uri and spec.output.uri)

The data: a CSV with numeric feature columns and a `label` column
(`python -m kubetrain_trainer.datagen tabular --out churn.csv` makes one).
"""

import argparse
import csv
import io
import os
from urllib.parse import urlparse

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from kubetrain_trainer import sdk


def local_path(uri: str) -> str:
    return urlparse(uri).path if uri.startswith("file://") else uri


def load(uri: str) -> tuple[list[dict[str, str]], torch.Tensor, torch.Tensor]:
    with open(local_path(uri), newline="") as handle:
        rows = list(csv.DictReader(io.StringIO(handle.read())))
    features = [name for name in rows[0] if name != "label"]
    classes = sorted({row["label"] for row in rows})
    x = torch.tensor([[float(row[name]) for name in features] for row in rows])
    y = torch.tensor([classes.index(row["label"]) for row in rows])
    return rows, (x - x.mean(0)) / (x.std(0) + 1e-6), y


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default=os.environ.get("KUBETRAIN_DATASET_URI"))
    parser.add_argument("--output", default=os.environ.get("KUBETRAIN_OUTPUT_URI"))
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.manual_seed(0)
    output = local_path(args.output)
    os.makedirs(output, exist_ok=True)

    with sdk.init(code_version="train_with_sdk/1", interval_seconds=2) as run:
        rows, x, y = load(args.data)
        run.dataset(args.data, profile=sdk.profile.records(rows, label="label"))
        cut = int(len(y) * 0.8)
        train_x, train_y, test_x, test_y = x[:cut], y[:cut], x[cut:], y[cut:]
        model = DistributedDataParallel(nn.Sequential(nn.Linear(x.shape[1], 64), nn.ReLU(), nn.Linear(64, int(y.max()) + 1)))
        optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
        shard = torch.arange(rank, cut, world)  # each rank its own slice of the training split
        steps_per_epoch = (len(shard) + args.batch_size - 1) // args.batch_size
        total = steps_per_epoch * args.epochs
        step = 0
        for epoch in range(1, args.epochs + 1):
            order = shard[torch.randperm(len(shard))]
            for start in range(0, len(order), args.batch_size):
                batch = order[start:start + args.batch_size]
                loss = nn.functional.cross_entropy(model(train_x[batch]), train_y[batch])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                step += 1
                run.progress(step, total_steps=total, epoch=epoch, total_epochs=args.epochs, loss=loss.item())
            with torch.no_grad():
                validation = nn.functional.cross_entropy(model(test_x), test_y).item()
            run.log_metrics({"validationLoss": validation})
            if rank == 0:
                path = os.path.join(output, f"checkpoint-{step}.pt")
                torch.save({"model": model.module.state_dict(), "step": step}, path)
                run.checkpoint(f"file://{path}", step)
        with torch.no_grad():
            logits = model(test_x)
            accuracy = (logits.argmax(1) == test_y).float().mean().item()
            test_loss = nn.functional.cross_entropy(logits, test_y).item()
        if rank == 0:
            weights = os.path.join(output, "model.pt")
            torch.save(model.module.state_dict(), weights)
            run.export_model(f"file://{weights}", card={"name": "churn-mlp", "architecture": "MLP 64 hidden"})
        run.finish({"accuracy": accuracy, "loss": test_loss})
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
