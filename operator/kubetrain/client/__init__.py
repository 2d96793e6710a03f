"""The Python client for TrainingJobs, on the API models: `Client().create(manifest)`, `.get`,
`.wait`, `.watch`, `.logs`, `.metrics`, `.model_versions`, `.resolve_version` (examples/client.py),
and what the trainer archived beside the model, readable after the pods are gone: `.history`
(metrics.jsonl) and `.archived_logs`. The `kubetrain` CLI's job verbs are built on it."""

from kubetrain.api.history import MetricRecord
from kubetrain.client.archive import ArchiveUnreadable
from kubetrain.client.jobs import Client, JobGone
from kubetrain.client.logs import ArchivedLogs, LogLine
from kubetrain.client.registry import NotServable, card_uri

__all__ = [
    "ArchiveUnreadable", "ArchivedLogs", "Client", "JobGone", "LogLine", "MetricRecord", "NotServable", "card_uri",
]
