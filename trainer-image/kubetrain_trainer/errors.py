"""Failures the operator can tell apart: each carries one of the reasons in docs/contracts.md."""

from __future__ import annotations

from typing import Literal

Reason = Literal["Diverged", "InvalidData", "InvalidConfig", "TrainerError"]


class TrainerFailure(Exception):
    """A failure whose cause is known, so the final report can name it instead of TrainerError."""

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason: Reason = reason
        self.message = message


class InvalidData(TrainerFailure):
    def __init__(self, message: str) -> None:
        super().__init__("InvalidData", message)


class InvalidConfig(TrainerFailure):
    def __init__(self, message: str) -> None:
        super().__init__("InvalidConfig", message)


class Diverged(TrainerFailure):
    def __init__(self, message: str) -> None:
        super().__init__("Diverged", message)
