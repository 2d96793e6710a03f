"""URI schemes as the trainer's storage layer opens them. The trainer reads and writes through
fsspec (`kubetrain_trainer/storage.py`), which opens one store under several protocol names
(`s3a://` is `s3://`, `gcs://` is `gs://`, `local://` is `file://`). The aliases are derived from
fsspec's own registry, so a spelling fsspec learns is covered without a hand-kept list: two
protocols are the same store when fsspec maps them to the same implementation class.

Invoked from `kubetrain.policy.residency.uri` (normalisation) and `kubetrain.policy.residency.bypass` (finding URIs
in commands, arguments and env values).
"""

from __future__ import annotations

import re

from fsspec.registry import known_implementations, registry

PVC = "pvc"
# The schemes a location rule can name; pvc:// is kubetrain's own (a claim), not fsspec's.
RULE_SCHEMES = ("s3", "gs", "file", PVC)
_PROTOCOL = re.compile(r"^[a-z][a-z0-9+.-]*$")


def _implementations() -> dict[str, str]:
    """protocol -> implementation class path, from fsspec's registry of known and imported ones."""
    classes = {protocol: str(spec["class"]) for protocol, spec in known_implementations.items()}
    for protocol, cls in registry.items():
        classes[protocol] = f"{cls.__module__}.{cls.__qualname__}"
    return {protocol.lower(): path for protocol, path in classes.items() if _PROTOCOL.match(protocol.lower())}


_CLASSES = _implementations()
STORAGE_PROTOCOLS: frozenset[str] = frozenset(_CLASSES) | {PVC}
"""Every protocol a URI may carry for the trainer to open it as a store."""
ALIASES: dict[str, str] = {
    protocol: scheme
    for scheme in RULE_SCHEMES
    if scheme in _CLASSES
    for protocol, path in _CLASSES.items()
    if path == _CLASSES[scheme]
}
"""protocol -> the rule scheme naming the same store (s3a -> s3, gcs -> gs, local -> file, s3 -> s3)."""


def canonical(protocol: str) -> str | None:
    """The rule scheme `protocol` opens, or None for a store no location rule can name (http,
    abfs, hf, ...): such a URI cannot be placed, so a policy with data rules refuses it."""
    lowered = protocol.lower()
    return PVC if lowered == PVC else ALIASES.get(lowered)
