"""The verbs that run the trainer's own code (`predict`, `curve --png`) run it as a command
(`python -m kubetrain_trainer ...`): the operator package never imports the trainer (an
import-linter contract), so the trainer must be installed beside the CLI for them."""

from __future__ import annotations

import importlib.util
import sys

TRAINER_MODULE = "kubetrain_trainer"


def trainer_installed(verb: str) -> bool:
    """Whether the trainer package is importable here; when not, says on stderr what `verb` needs."""
    if importlib.util.find_spec(TRAINER_MODULE) is not None:
        return True
    print(f"kubetrain: {verb} runs the trainer's code: install kubetrain[trainer] beside {sys.executable}",
          file=sys.stderr)
    return False
