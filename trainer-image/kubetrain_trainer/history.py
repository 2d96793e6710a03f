"""The run's metric history, `metrics.jsonl` in the output location, and its curves, `curves.png`
beside it: the record of training that outlives the pods and the TrainingJob's status (which
keeps only the latest numbers). The format is docs/contracts.md's "Metric history"; the
operator's client reads it back (`kubetrain curve`, `Client.history`).

One JSON object per line (`MetricRecord`), appended as training goes. A record is never
rewritten: a restarted attempt appends records for steps an earlier attempt already recorded,
and readers keep the last record of each (phase, step, metric). Only global rank 0 writes.

Local outputs (file://, pvc://) get each line as it is recorded, so a run that dies midway
leaves its history up to then; object stores (s3://, gs://) take no appends, so there the
history is written whole when the run closes it.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from kubetrain_trainer import curves, logs, storage
from kubetrain_trainer.status import rfc3339

HISTORY = "metrics.jsonl"
CURVES = "curves.png"
# The most train-loss points a run records (about): enough for a smooth curve, few enough that
# the file stays small for runs of any length.
TRAIN_POINTS = 200

Phase = Literal["train", "validation", "test"]


class MetricRecord(BaseModel):
    """One line of metrics.jsonl: what was measured on which split after optimizer step `step`
    (epochs 1-based), and when (RFC 3339, UTC)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    step: int = Field(ge=0)
    epoch: int | None = None
    phase: Phase
    metrics: dict[str, float]
    time: str


def step_interval(total_steps: int, points: int = TRAIN_POINTS) -> int:
    """Record the train loss every this many steps, so a run leaves about `points` of them."""
    return max(1, math.ceil(total_steps / points))


def finite(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The finite numbers of `metrics` (JSON has no NaN; a diverged step is in the logs)."""
    return {
        str(key): float(value) for key, value in metrics.items()
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    }


class History:
    """Rank 0's writer of `<output>/metrics.jsonl`; `close()` renders the curves."""

    def __init__(self, output_uri: str) -> None:
        self.output_uri = output_uri
        self.uri = storage.join(output_uri, HISTORY)
        self._records: list[MetricRecord] = []
        self._local = storage.is_local(output_uri)
        if self._local:
            storage.local_path(self.uri).parent.mkdir(parents=True, exist_ok=True)

    def record(self, step: int, phase: Phase, metrics: Mapping[str, Any], epoch: int | None = None) -> None:
        numbers = finite(metrics)
        if not numbers:
            return
        record = MetricRecord(step=step, epoch=epoch, phase=phase, metrics=numbers, time=rfc3339())
        self._records.append(record)
        if self._local:
            with storage.local_path(self.uri).open("a") as handle:
                handle.write(record.model_dump_json() + "\n")

    def close(self) -> dict[str, Any]:
        """Writes what an object store still lacks and the curves of the whole history (earlier
        attempts' records included); returns the model card's `history` section: each
        artefact's URI, its path relative to the output location, and the files' digests."""
        if self._local:
            path = storage.local_path(self.uri)
            blob = path.read_bytes() if path.exists() else b""
        else:
            earlier = storage.read_bytes(self.uri) if storage.exists(self.uri) else b""
            blob = earlier + "".join(r.model_dump_json() + "\n" for r in self._records).encode()
            storage.write_bytes(self.uri, blob)
        records = parse(blob.decode())
        section: dict[str, Any] = {
            "logs": {"uri": storage.join(self.output_uri, logs.ARCHIVE_DIR) + "/", "path": f"{logs.ARCHIVE_DIR}/"},
        }
        if records:
            section["metrics"] = self._artefact(HISTORY, blob)
        png = curves.render_png(curves.series(records)) if records else None
        if png is not None:
            storage.write_bytes(storage.join(self.output_uri, CURVES), png)
            section["curves"] = self._artefact(CURVES, png)
        logs.info("history_written", uri=self.uri, records=len(records), curves=png is not None)
        return section

    def _artefact(self, name: str, content: bytes) -> dict[str, str]:
        """Hashed from the bytes just written, not read back."""
        return {"uri": storage.join(self.output_uri, name), "path": name, "sha256": hashlib.sha256(content).hexdigest()}


def parse(text: str) -> list[MetricRecord]:
    """The records of a metrics.jsonl (blank lines skipped)."""
    return [MetricRecord.model_validate_json(line) for line in text.splitlines() if line.strip()]
