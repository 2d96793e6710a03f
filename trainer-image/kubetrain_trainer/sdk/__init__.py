"""The reporting SDK for users' own training code in a TrainingJob (docs/user-code.md, "Your own training
code"; docs/contracts.md). Import-light: the standard library and the trainer's torch-free
reporting modules only, so it costs nothing at import and runs in any image.

    from kubetrain_trainer import sdk

    with sdk.init(code_version="git-sha", catch_sigterm=True) as run:  # rank 0 reports; others no-op
        run.dataset(profile=sdk.profile.records(rows, label="label"))
        for step in ...:
            run.progress(step, total_steps=..., epoch=..., loss=...)
            if run.stop_requested:                  # SIGTERM: a preemption or a drain
                save(step); run.checkpoint(uri, step=step)
                run.stop(step)                      # fails the run as stopped; the next attempt resumes
        run.checkpoint("file:///out/ckpt-100.pt", step=100)
        run.export_model("file:///out/model.pt", card={"name": "fraud"})
        run.finish({"accuracy": 0.93, "loss": 0.21})

The module-level functions act on the process's run (`init()` creates it, or the first call).
Integrations: `kubetrain_trainer.sdk.huggingface.KubetrainCallback` (transformers' Trainer) and
`kubetrain_trainer.sdk.raytrain.KubetrainRayCallback` (ray.train.report), each importing its
framework only when used.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NoReturn

from kubetrain_trainer import profile
from kubetrain_trainer.errors import Reason
from kubetrain_trainer.sdk.run import Run, start
from kubetrain_trainer.stopping import Stopped

__all__ = [
    "Run", "Stopped", "checkpoint", "current", "dataset", "export_model", "fail", "finish", "init", "log_metrics",
    "profile", "progress", "stop", "stop_requested",
]

_current: Run | None = None


def init(code_version: str | None = None, interval_seconds: float = 10.0, catch_sigterm: bool = False) -> Run:
    """Starts this process's run (again: a later call replaces it) from the pod's environment.
    `catch_sigterm`: the code checkpoints on SIGTERM itself (Run.stop_requested, Run.stop)."""
    global _current
    _current = start(code_version=code_version, interval_seconds=interval_seconds, catch_sigterm=catch_sigterm)
    return _current


def current() -> Run:
    """This process's run, started with the defaults on first use."""
    return _current if _current is not None else init()


def progress(step: int, total_steps: int | None = None, epoch: int | None = None, total_epochs: int | None = None,
             loss: float | None = None, metrics: Mapping[str, float] | None = None) -> None:
    current().progress(step, total_steps, epoch, total_epochs, loss, metrics=metrics)


def log_metrics(metrics: Mapping[str, float]) -> None:
    current().log_metrics(metrics)


def checkpoint(uri: str, step: int, digest: str | None = None) -> None:
    current().checkpoint(uri, step, digest)


def dataset(uri: str | None = None, digest: str | None = None, profile: Mapping[str, Any] | None = None) -> str | None:
    return current().dataset(uri, digest, profile)


def export_model(uri: str, card: Mapping[str, Any] | None = None) -> str | None:
    return current().export_model(uri, card)


def finish(metrics: Mapping[str, float] | None = None, message: str | None = None) -> None:
    current().finish(metrics, message)


def fail(reason: Reason, message: str) -> None:
    current().fail(reason, message)


def stop_requested() -> bool:
    return current().stop_requested


def stop(step: int) -> NoReturn:
    current().stop(step)
