"""Scheme spellings: every protocol fsspec opens as the store of a rule scheme is read as that
scheme, and every other store fsspec knows is one no rule can place."""

from __future__ import annotations

import pytest
from fsspec.registry import known_implementations

from kubetrain.policy.residency.bypass import storage_uris
from kubetrain.policy.residency.schemes import ALIASES, STORAGE_PROTOCOLS, canonical
from kubetrain.policy.residency.uri import UriError, normalise


@pytest.mark.parametrize("scheme", ["s3", "gs", "file"])
def test_every_fsspec_protocol_of_a_rule_schemes_store_is_its_alias(scheme: str) -> None:
    store = known_implementations[scheme]["class"]
    same_store = {p for p, spec in known_implementations.items() if spec["class"] == store}
    assert len(same_store) >= 2  # s3/s3a, gs/gcs, file/local: the table is derived, not empty
    assert {p for p in same_store if canonical(p) == scheme} == same_store


@pytest.mark.parametrize(("raw", "read_as"), [
    ("s3a://EU-Data/datasets/x", "s3://eu-data/datasets/x"),
    ("GCS://eu-data/x", "gs://eu-data/x"),
    ("local:///data/x", "file:///data/x"),
])
def test_aliases_are_normalised_to_the_rule_scheme(raw: str, read_as: str) -> None:
    assert str(normalise(raw)) == read_as


@pytest.mark.parametrize("raw", ["https://us.example/x", "abfs://c/x", "hf://datasets/x", "s3n://us-bucket/x"])
def test_other_schemes_cannot_be_placed(raw: str) -> None:
    with pytest.raises(UriError, match="not a store a policy can place"):
        normalise(raw)


def test_uris_are_found_under_every_storage_protocol_and_syntax() -> None:
    text = "--a=s3a://b/x,S3://c/y gcs://d/z simplecache::s3://e/w s3::f/v tcp://10.0.0.1:80 n/a://x"
    assert list(storage_uris(text)) == [
        "s3a://b/x", "S3://c/y", "gcs://d/z", "simplecache::", "s3://e/w", "s3::f/v"
    ]
    assert "http" in STORAGE_PROTOCOLS and "tcp" not in STORAGE_PROTOCOLS and ALIASES["s3a"] == "s3"


@pytest.mark.parametrize(("text", "uri"), [
    ("1s3://us/x", "s3://us/x"),
    ("a_s3://us/x", "s3://us/x"),
    ("zzz::s3://us/x", "s3://us/x"),
    ("--cfg={\"uri\":\"gs:\\/\\/us\\/x\"}", "gs://us/x"),
    ("s3:\\u002F\\u002fus/x", "s3://us/x"),
    ("s3%3a%2F%2Fus%2Fx", "s3://us/x"),
    ("printf 's3\\072\\057\\057us/x'", "s3://us/x"),
    ("$'s3:\\x2f\\U0000002Fus/x' \\UFFFFFFFF", "s3://us/x"),
    ("s3%253A%252F%252Fus", "s3://us"),
    ("\"{\\\"u\\\":\\\"s3:\\\\/\\\\/us\\\"}\"", "s3://us"),
])
def test_a_scheme_is_found_wherever_it_ends_and_under_escapes(text: str, uri: str) -> None:
    assert uri in list(storage_uris(text))


def test_a_uri_runs_to_the_next_protocol_so_the_scan_stays_linear() -> None:
    assert list(storage_uris("s3::" * 100_000)) == ["s3::"]
    assert list(storage_uris("s3://eu/datasets/s3://us/x")) == ["s3://eu/datasets/", "s3://us/x"]
