"""Storage URIs in one canonical form, so a pattern is matched against what a storage client
would really open and not against a spelling chosen to slip past it: the scheme is the one the
trainer's storage layer opens under that spelling (`s3a://` is read as `s3://`, policy.schemes).

Anything with two plausible readings is refused instead of being guessed at: after one
percent-decoding the URI must be plain printable ASCII with no `.`/`..` or empty segments, no
backslashes, no trailing dots, no userinfo, port, query or fragment, and no second layer of
percent-encoding.
"""

from __future__ import annotations

import re
import urllib.parse

from pydantic import BaseModel, ConfigDict

from kubetrain.policy.residency.schemes import RULE_SCHEMES, canonical

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://(.*)$", re.DOTALL)
# S3/GCS bucket names and Kubernetes claim names (DNS-1123 subdomains) share this shape.
_HOST = re.compile(r"^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$")
_PRINTABLE_ASCII = re.compile(r"^[\x21-\x7e]*$")
_ENCODED = re.compile(r"%[0-9A-Fa-f]{2}")


class UriError(ValueError):
    """Why a URI cannot be normalised; the text is shown to users as is."""


class StorageUri(BaseModel):
    model_config = ConfigDict(frozen=True)

    scheme: str
    host: str
    segments: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.scheme}://{self.host}/{'/'.join(self.segments)}"


def normalise(raw: str) -> StorageUri:
    """Raises UriError naming the first problem."""
    match = _SCHEME.match(raw)
    if match is None:
        raise UriError("not a URI of the form scheme://bucket/path")
    spelled, rest = match.group(1).lower(), match.group(2)
    scheme = canonical(spelled)
    if scheme is None:
        raise UriError(
            f"scheme {spelled!r} is not a store a policy can place (only {', '.join(RULE_SCHEMES)} and the "
            "spellings fsspec opens as the same store, e.g. s3a, gcs, local)"
        )
    if "%" in rest:
        try:
            decoded = urllib.parse.unquote(rest, errors="strict")
        except UnicodeDecodeError:
            raise UriError("its percent-encoding is not valid UTF-8") from None
        if _ENCODED.search(decoded):
            raise UriError("it is percent-encoded twice")
    else:
        decoded = rest
    if not _PRINTABLE_ASCII.match(decoded):
        raise UriError("it contains whitespace, control or non-ASCII characters (after percent-decoding)")
    for char, what in (("\\", "a backslash"), ("?", "a query"), ("#", "a fragment")):
        if char in decoded:
            raise UriError(f"it contains {what}")
    host, _, path = decoded.partition("/")
    host = host.lower()
    _check_host(scheme, host)
    segments = tuple(path.split("/")) if path else ()
    if segments and segments[-1] == "":
        segments = segments[:-1]  # one trailing slash names the same directory
    for segment in segments:
        _check_segment(segment)
    return StorageUri(scheme=scheme, host=host, segments=segments)


def _check_host(scheme: str, host: str) -> None:
    if "@" in host:
        raise UriError("it has userinfo (user@host)")
    if ":" in host:
        raise UriError("it has a port or a colon in the bucket")
    if scheme == "file":
        if host not in ("", "localhost"):
            raise UriError("file:// URIs must have an empty host (file:///path)")
        return
    if not host:
        raise UriError("the bucket (or claim) is empty")
    if host.endswith("."):
        raise UriError("the bucket (or claim) ends with a dot")
    if not _HOST.match(host) or ".." in host:
        raise UriError("the bucket (or claim) is not a valid name (lowercase letters, digits, '-' and '.')")


def _check_segment(segment: str) -> None:
    if segment == "":
        raise UriError("it has an empty path segment (//)")
    if segment in (".", ".."):
        raise UriError(f"it has a {segment!r} path segment")
    if segment.endswith("."):
        raise UriError(f"path segment {segment!r} ends with a dot")
