"""`kubetrain sweep`'s formatting (cli/sweep_show.py): the trial table and the objective by trial."""

from __future__ import annotations

from datetime import datetime, timezone

from kubetrain.api.sweep import TrainingSweep
from kubetrain.cli.sweep_show import describe_sweep, objective_chart

NOW = datetime(2026, 12, 1, 10, 0, 0, tzinfo=timezone.utc)
TRIALS = [
    {"index": 0, "job": "s-t0", "parameters": {"learningRate": 0.01}, "state": "Succeeded", "value": 0.9,
     "intermediate": {"1": 0.8, "2": 0.88}, "gpuHours": 0.1},
    {"index": 1, "job": "s-t1", "parameters": {"learningRate": 0.3}, "state": "Pruned", "intermediate": {"2": 0.5},
     "gpuHours": 0.05, "message": "behind"},
    {"index": 2, "job": "s-t2", "parameters": {"learningRate": 0.001}, "state": "Pending"},
]


def sweep() -> TrainingSweep:
    return TrainingSweep.model_validate({
        "metadata": {"name": "s", "namespace": "team", "creationTimestamp": "2026-12-01T09:00:00Z"},
        "spec": {
            "jobTemplate": {"spec": {"workers": 1, "task": {"type": "tabular-classification"},
                                     "dataset": {"uri": "file:///d.csv"}, "output": {"uri": "file:///o"}}},
            "parameters": [{"path": "learningRate", "type": "logUniform", "min": 1e-4, "max": 0.3}],
            "objective": {"metric": "accuracy"}, "maxTrials": 3, "maxGpuHours": 1,
        },
        "status": {"phase": "Running", "reason": "Searching", "message": "1 trials active", "trials": TRIALS,
                   "counts": {"pending": 1, "succeeded": 1, "pruned": 1}, "completed": "2/3",
                   "best": {"index": 0, "job": "s-t0", "parameters": {"learningRate": 0.01}, "value": 0.9},
                   "cost": {"trialGpuHours": 0.1, "estimatedGpuHours": 0.3, "spentGpuHours": 0.15,
                            "remainingGpuHours": 0.75, "budget": "no BudgetPolicy selects namespace team"}},
    })


def test_describe_shows_state_best_cost_and_the_trial_table() -> None:
    lines = describe_sweep(sweep(), [{"type": "Normal", "reason": "TrialCreated", "message": "trial 2"}], NOW)
    text = "\n".join(lines)
    assert "Phase:      Running (Searching: 1 trials active)" in text
    assert "Best:       s-t0 accuracy 0.9000 learningRate=0.01" in text
    assert "0.1 GPU-hours per trial, 0.3 estimated; 0.15 spent, 0.75 left of maxGpuHours 1" in text
    header = next(line for line in lines if "TRIAL" in line)
    assert header.split() == ["TRIAL", "JOB", "STATE", "ACCURACY", "EPOCHS", "GPU-HOURS", "PARAMETERS"]
    assert any(line.split()[:5] == ["1", "s-t1", "Pruned", "-", "2"] for line in lines)
    assert any("TrialCreated" in line for line in lines)


def test_the_chart_scales_values_and_marks_live_ones() -> None:
    chart = objective_chart(sweep().status.trials)
    assert chart == ["t0     0.9000  |" + "#" * 20, "t1     0.5000~ |#"]
