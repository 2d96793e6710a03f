"""resource.Quantity strings -> numbers, for the few places a count must be derived from a
request (e.g. the CPUs a Ray node advertises to Ray's scheduler)."""

from __future__ import annotations

import re

_SUFFIXES = {
    "n": 1e-9, "u": 1e-6, "m": 1e-3, "": 1.0, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18,
    "Ki": 2.0**10, "Mi": 2.0**20, "Gi": 2.0**30, "Ti": 2.0**40, "Pi": 2.0**50, "Ei": 2.0**60,
}
_QUANTITY = re.compile(r"^([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)([a-zA-Z]*)$")


def quantity_value(quantity: str) -> float:
    """The quantity as a plain number ("500m" -> 0.5, "2Ki" -> 2048); the API models have already
    checked the syntax, so a malformed one is a programming error (ValueError)."""
    match = _QUANTITY.match(quantity)
    if match is None or match.group(2) not in _SUFFIXES:
        raise ValueError(f"not a resource quantity: {quantity!r}")
    return float(match.group(1)) * _SUFFIXES[match.group(2)]
