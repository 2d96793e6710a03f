"""The webhook certificates the operator makes for itself: what is renewed when, and that the
files change in one step. kopf serving renewed files without a restart is shown on the real
control plane in tests/integration/test_webhook_certificates.py."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import pytest
from cryptography import x509

from kubetrain import tls
from kubetrain.controller.webhook_certs import CertRenewer, Renewal, WebhookCerts, ensure_certs, renewal

NOW = dt.datetime(2026, 12, 2, 5, 0, tzinfo=dt.timezone.utc)
HOSTS = ["webhook.kubetrain.svc", "127.0.0.1"]
DAY = dt.timedelta(days=1)


def read(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def made(days_ago: float) -> tuple[x509.Certificate, x509.Certificate]:
    """A CA (ten years) and a serving certificate (one year), both issued `days_ago`."""
    issued = NOW - days_ago * DAY
    ca, key = tls.self_signed_ca("ca", now=issued)
    cert = tls.issue(tls.name("s"), tls.new_key().public_key(), ca.subject, key, now=issued)
    return ca, cert


@pytest.mark.parametrize(
    ("ca_age", "cert_age", "ca_kept", "serving", "ca"),
    [
        (0, 0, True, False, False),
        (0, 240, True, False, False),  # 125 days left of 365: more than a third
        (0, 245, True, True, False),  # 120 days left: renewed from the kept CA
        (0, 400, True, True, False),  # expired
        (3300, 0, True, True, True),  # the CA would expire before a new serving certificate
        (0, 0, False, False, False),  # made elsewhere or by an older version, not due: kept
        (0, 300, False, True, True),  # due, and no CA to sign with: both anew
    ],
)
def test_renewal(ca_age: float, cert_age: float, ca_kept: bool, serving: bool, ca: bool) -> None:
    ca_cert, _ = made(ca_age)
    _, cert = made(cert_age)
    assert renewal(ca_cert if ca_kept else None, cert, NOW) == Renewal(serving=serving, ca=ca)
    assert renewal(None, None, NOW).serving and renewal(None, None, NOW).ca


def test_first_certificates_a_ten_year_ca_and_a_one_year_serving_certificate(tmp_path: Path) -> None:
    certs = ensure_certs(tmp_path, HOSTS, now=NOW)
    ca, cert = read(certs.ca), read(certs.cert)
    assert ca.not_valid_after_utc - NOW == tls.CA_VALIDITY and cert.not_valid_after_utc - NOW == tls.VALIDITY
    assert cert.issuer == ca.subject
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["webhook.kubetrain.svc"]
    # All four files are links into one directory that a single rename replaces.
    for path in (certs.ca, certs.ca_key, certs.cert, certs.key):
        assert path.is_symlink() and path.resolve().parent == (tmp_path / "..data").resolve()
    assert oct(certs.key.stat().st_mode & 0o777) == "0o600"


def test_a_due_serving_certificate_is_renewed_from_the_kept_ca(tmp_path: Path) -> None:
    first = ensure_certs(tmp_path, HOSTS, now=NOW - 250 * DAY)
    ca_before, cert_before = first.ca.read_bytes(), read(first.cert)
    old_data = (tmp_path / "..data").resolve()
    assert ensure_certs(tmp_path, HOSTS, now=NOW - 200 * DAY).cert.read_bytes() == first.cert.read_bytes()

    renewed = ensure_certs(tmp_path, HOSTS, now=NOW)
    assert renewed.ca.read_bytes() == ca_before, "the CA the API server trusts stays"
    cert = read(renewed.cert)
    assert cert.not_valid_after_utc > cert_before.not_valid_after_utc and cert.issuer == read(renewed.ca).subject
    assert not old_data.exists(), "the previous files are removed"


def test_an_expiring_ca_is_replaced(tmp_path: Path) -> None:
    ensure_certs(tmp_path, HOSTS, now=NOW - 3400 * DAY)
    before = (tmp_path / "ca.crt").read_bytes()
    certs = ensure_certs(tmp_path, HOSTS, now=NOW)
    assert certs.ca.read_bytes() != before
    assert read(certs.ca).not_valid_after_utc - NOW == tls.CA_VALIDITY


def test_plain_files_of_an_older_version_are_kept_until_due_then_replaced(tmp_path: Path) -> None:
    certs = WebhookCerts.in_dir(tmp_path)
    ca, key = tls.self_signed_ca("old", validity=tls.VALIDITY, now=NOW - 100 * DAY)
    leaf_key = tls.new_key()
    tls.write_cert(certs.ca, ca)
    tls.write_cert(certs.cert, tls.issue(tls.name("s"), leaf_key.public_key(), ca.subject, key, now=NOW - 100 * DAY))
    tls.write_key(certs.key, leaf_key)
    before = certs.cert.read_bytes()
    assert ensure_certs(tmp_path, HOSTS, now=NOW).cert.read_bytes() == before
    renewed = ensure_certs(tmp_path, HOSTS, now=NOW + 200 * DAY)
    assert renewed.ca.is_symlink() and renewed.ca_key.exists()
    assert read(renewed.ca).subject != ca.subject


def test_the_renewer_renews_while_running(tmp_path: Path) -> None:
    ensure_certs(tmp_path, HOSTS, now=dt.datetime.now(dt.timezone.utc) - 300 * DAY)
    before = (tmp_path / "tls.crt").read_bytes()
    renewer = CertRenewer(tmp_path, HOSTS, interval=0.05)
    renewer.start()
    try:
        deadline = time.monotonic() + 10
        while (tmp_path / "tls.crt").read_bytes() == before:
            assert time.monotonic() < deadline, "not renewed"
            time.sleep(0.05)
    finally:
        renewer.stop()
    assert read(tmp_path / "tls.crt").not_valid_after_utc > dt.datetime.now(dt.timezone.utc) + 300 * DAY
