"""Ray Train reporting through the SDK: what the training function gives `ray.train.report`
reaches status. Ray Train's controller calls the callback after every report with each worker's
metrics; rank 0's become status.progress (its `step`, `epoch` and `loss` keys, every number as a
live metric) and a reported checkpoint status.lastCheckpoint.

    trainer = TorchTrainer(train_fn, ..., run_config=RunConfig(callbacks=[KubetrainRayCallback()]))
    result = trainer.fit()
    sdk.finish(result.metrics)            # in the driver: the final metrics and report

The controller runs in its own Ray process on the head pod (which has the job's environment and
ServiceAccount), so the callback is pickled there and starts its run on its first report. Ray is
imported when the callback is made, never with the SDK. The logic is `ReportForwarding`, a plain
class the callback inherits beside Ray's UserCallback.
"""

from __future__ import annotations

from typing import Any

from kubetrain_trainer import sdk
from kubetrain_trainer.sdk.run import Run


class ReportForwarding:
    def __init__(self) -> None:
        self._run: Run | None = None
        self._reports = 0

    @property
    def run(self) -> Run:
        """Started in the process the callback runs in (a Run's reporter thread cannot be pickled)."""
        if self._run is None:
            self._run = sdk.current()
        return self._run

    def __getstate__(self) -> dict[str, Any]:
        return {"_run": None, "_reports": self._reports}

    def after_report(self, run_context: Any, metrics: list[dict[str, Any]], checkpoint: Any) -> None:
        self._reports += 1
        first = metrics[0] if metrics else {}
        step = _int(first.get("step"), self._reports)
        loss = first.get("loss")
        self.run.progress(
            step,
            epoch=_int(first.get("epoch"), 0) or None,
            loss=float(loss) if isinstance(loss, (int, float)) else None,
            metrics={key: value for key, value in first.items() if key not in ("step", "epoch", "loss")},
        )
        if checkpoint is not None:
            self.run.checkpoint(checkpoint_uri(checkpoint), step)


def checkpoint_uri(checkpoint: Any) -> str:
    """A ray.train.Checkpoint's location as a URI: its path on the local filesystem, or prefixed
    with its pyarrow filesystem's scheme (s3, gcs)."""
    kind = getattr(getattr(checkpoint, "filesystem", None), "type_name", "local")
    return str(checkpoint.path) if kind == "local" else f"{kind}://{checkpoint.path}"


def _int(value: Any, default: int) -> int:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else default


def KubetrainRayCallback() -> Any:  # noqa: N802 (a class to its callers)
    """A `ray.train.UserCallback` forwarding `ray.train.report` to the job's status."""
    from ray.train import UserCallback

    callback = type("KubetrainRayCallback", (ReportForwarding, UserCallback), {})
    return callback()
