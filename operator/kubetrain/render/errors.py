"""A refusal of a spec the API server accepted but the operator cannot run."""

from __future__ import annotations


class InvalidSpec(ValueError):
    """Carries its parts separately so callers can render them (status message, event, webhook
    denial) while `str()` always says which field, what value, what is allowed and how to fix it."""

    def __init__(self, field: str, value: object, allowed: str, fix: str) -> None:
        self.field = field
        self.value = value
        self.allowed = allowed
        self.fix = fix
        super().__init__(f"{field}: {value!r} is not allowed; allowed: {allowed}; fix: {fix}")


def summarize(errors: list[InvalidSpec]) -> str:
    return "; ".join(str(error) for error in errors)
