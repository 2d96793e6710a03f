"""The Python client for TrainingJobs, on the API models: `Client().create(manifest)`, `.get`,
`.wait`, `.watch`, `.logs`, `.metrics`, `.model_versions`, `.resolve_version` (examples/client.py).
The `kubetrain` CLI's job verbs are built on it."""

from kubetrain.client.jobs import Client, JobGone
from kubetrain.client.logs import LogLine
from kubetrain.client.registry import NotServable, card_uri

__all__ = ["Client", "JobGone", "LogLine", "NotServable", "card_uri"]
