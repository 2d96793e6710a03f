"""What a trainer archives in the job's output location, beside the model (docs/contracts.md,
"History and logs in the output location"): the metric history `metrics.jsonl`, its curves
`curves.png` and the processes' logs `logs/rank-<N>.log`. They outlive the pods and the job, so
`kubetrain curve` and `kubetrain logs` read them once the pods are gone (client/archive.py).

The operator never imports the trainer (an import contract), so the record's shape is written
down here and in kubetrain_trainer/history.py; tests/unit/test_contract_operator_trainer.py
parses the trainer's records with this model."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

HISTORY_FILE = "metrics.jsonl"
LOGS_DIR = "logs"
LOG_PREFIX, LOG_SUFFIX = "rank-", ".log"

HistoryPhase = Literal["train", "validation", "test"]


class MetricRecord(BaseModel):
    """One line of metrics.jsonl: the metrics measured on one split after optimizer step `step`
    (epochs 1-based), and when. Fields a later trainer adds are ignored, not refused."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    step: int = Field(ge=0)
    epoch: int | None = None
    phase: HistoryPhase
    metrics: dict[str, float]
    time: str


def parse_history(text: str) -> list[MetricRecord]:
    """The records of a metrics.jsonl, in file order (blank lines skipped). Text after the last
    newline is a line the trainer is still writing (the file is read while the job runs), so it
    is left for the next read; a complete line that is not a record raises pydantic's
    ValidationError, naming it."""
    complete = text[: text.rfind("\n") + 1]
    return [MetricRecord.model_validate_json(line) for line in complete.splitlines() if line.strip()]


def log_rank(file_name: str) -> int | None:
    """The process rank of an archived log file's name (`rank-3.log` -> 3), None for other names."""
    if not (file_name.startswith(LOG_PREFIX) and file_name.endswith(LOG_SUFFIX)):
        return None
    digits = file_name[len(LOG_PREFIX) : -len(LOG_SUFFIX)]
    return int(digits) if digits.isdigit() else None
