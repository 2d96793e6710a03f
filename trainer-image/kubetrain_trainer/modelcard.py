"""The model card, `model-card.json`: the file that ties exported weights to the data, code and run
that produced them and travels where the cluster's records do not. Torch-free, so the built-in
trainer (export.py) and users' code through the SDK (kubetrain_trainer.sdk) write one format."""

from __future__ import annotations

import json
import platform
from typing import Any

from kubetrain_trainer import __version__, storage
from kubetrain_trainer.environment import JobEnvironment

CARD = "model-card.json"


def job_facts(env: JobEnvironment, code_version: str | None) -> dict[str, Any]:
    """What the operator told the run about itself: which job, attempt, image and submitter."""
    return {
        "job": {"namespace": env.namespace, "name": env.name, "uid": env.uid, "attempt": env.attempt},
        "trainerVersion": __version__,
        "codeVersion": code_version,
        "trainerImage": env.image,
        "submittedBy": env.submitted_by,
    }


def software(**versions: str) -> dict[str, str]:
    return {"python": platform.python_version(), **versions}


def write(uri: str, card: dict[str, Any]) -> None:
    storage.write_bytes(uri, json.dumps(card, indent=2).encode())
