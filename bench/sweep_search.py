"""Random search against TPE, as a TrainingSweep runs them: the same search space as
examples/sweep-tabular.yaml (learning rate, log-uniform; width of the MLP's hidden layer), trials
drawn by the operator's own planner (kubetrain.plan.search.suggest, the code the reconcile calls),
each trial the built-in trainer's real training and test-split evaluation, run in-process instead
of in a pod (no cluster: the search, not the scheduling, is what is measured). Trials run one
after another (parallelTrials 1), so TPE sees every earlier result.

    .venv/bin/python bench/sweep_search.py --seeds 6 --trials 12

Not a test: it prints the best accuracy per seed and algorithm, their means, and how often each
algorithm found the better model; bench/README.md records a run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import yaml
from trainer_throughput import SINGLE_PROCESS

from kubetrain.api.sweep import Algorithm, TrainingSweepSpec, Trial, TrialState
from kubetrain.plan.search import suggest
from kubetrain.render.trial import trial_spec
from kubetrain_trainer import data, datagen, preprocess
from kubetrain_trainer.checkpoint import Checkpointer
from kubetrain_trainer.config import parse_task
from kubetrain_trainer.evaluate import evaluate
from kubetrain_trainer.job import build_model, seed_everything
from kubetrain_trainer.loop import TrainingLoop

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "sweep-tabular.yaml"


class Trainer:
    """The trainer's own steps (kubetrain_trainer.job.train) for one process, on data prepared
    once: prepare() depends only on the split fractions and the seed, which no parameter changes."""

    def __init__(self, csv: Path, task: dict[str, Any]) -> None:
        self.prepared = preprocess.prepare(data.load(f"file://{csv}", "tabular"), parse_task(json.dumps(task)))

    def accuracy(self, task: dict[str, Any]) -> float:
        config = parse_task(json.dumps(task))
        seed_everything(config.seed)
        built = build_model(config, self.prepared)
        with tempfile.TemporaryDirectory() as output:  # a fresh output: a trial never resumes another
            TrainingLoop(built.module, self.prepared, config, SINGLE_PROCESS, torch.device("cpu"),
                         Checkpointer(output), progress_gate=lambda _: False).run()
        return evaluate(built.module, *self.prepared.test, self.prepared.num_classes, torch.device("cpu"))["accuracy"]


def search(spec: TrainingSweepSpec, trainer: Trainer) -> list[Trial]:
    trials: list[Trial] = []
    for index in range(spec.max_trials):
        parameters = suggest(spec, trials, index)
        task = trial_spec(spec, parameters, f"bench-t{index}")["task"]
        value = trainer.accuracy(task)
        trials.append(Trial(index=index, job=f"bench-t{index}", parameters=parameters, state=TrialState.SUCCEEDED,
                            value=value))
    return trials


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=6, help="sweeps per algorithm (spec.seed 0..N-1)")
    parser.add_argument("--trials", type=int, default=12, help="maxTrials of each sweep")
    parser.add_argument("--startup", type=int, default=None, help="TPE startupTrials (default: the operator's)")
    parser.add_argument("--rows", type=int, default=2000, help="rows of the generated tabular data set")
    parser.add_argument("--epochs", type=int, default=None, help="epochs per trial (default: the example's)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    manifest = yaml.safe_load(EXAMPLE.read_text())["spec"]
    manifest.update(maxTrials=args.trials, parallelTrials=1, pruning={"policy": "None"})
    if args.epochs is not None:
        manifest["jobTemplate"]["spec"]["task"]["epochs"] = args.epochs
    if args.startup is not None:
        manifest["startupTrials"] = args.startup
    with tempfile.TemporaryDirectory() as work:
        csv = Path(work) / "tabular.csv"
        csv.write_text(datagen.tabular(args.rows, seed=0))
        trainer = Trainer(csv, manifest["jobTemplate"]["spec"]["task"])
        best: dict[Algorithm, list[float]] = {Algorithm.RANDOM: [], Algorithm.TPE: []}
        began = time.monotonic()
        print(f"{'seed':>4}  {'random':>8}  {'tpe':>8}  (best test accuracy of {args.trials} trials)")
        for seed in range(args.seeds):
            for algorithm in best:
                spec = TrainingSweepSpec.model_validate({**manifest, "algorithm": algorithm.value, "seed": seed})
                best[algorithm].append(max(t.value or 0.0 for t in search(spec, trainer)))
            print(f"{seed:>4}  {best[Algorithm.RANDOM][-1]:8.4f}  {best[Algorithm.TPE][-1]:8.4f}", flush=True)
    random_best, tpe_best = best[Algorithm.RANDOM], best[Algorithm.TPE]
    wins = sum(t > r for r, t in zip(random_best, tpe_best, strict=True))
    ties = sum(t == r for r, t in zip(random_best, tpe_best, strict=True))
    print(f"mean  {statistics.mean(random_best):8.4f}  {statistics.mean(tpe_best):8.4f}")
    print(f"TPE better on {wins}, equal on {ties}, worse on {args.seeds - wins - ties} of {args.seeds} seeds; "
          f"{2 * args.seeds * args.trials} trainings in {time.monotonic() - began:.0f} s")


if __name__ == "__main__":
    main()
