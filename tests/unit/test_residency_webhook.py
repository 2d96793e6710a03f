"""The webhook's certificate and flags: generated once with the host the API server calls, kept
across restarts (the registered caBundle must stay valid), and refused without a cert dir."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
from cryptography import x509

from kubetrain.cli import main
from kubetrain.controller.webhook_certs import ensure_certs


def test_certificate_names_the_host_and_is_kept_on_restart(tmp_path: Path) -> None:
    certs = ensure_certs(tmp_path, ["webhook.kubetrain.svc", "127.0.0.1"])
    cert = x509.load_pem_x509_certificate(certs.cert.read_bytes())
    ca = x509.load_pem_x509_certificate(certs.ca.read_bytes())
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["webhook.kubetrain.svc"]
    assert sans.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    cert.verify_directly_issued_by(ca)
    assert certs.key.stat().st_mode & 0o077 == 0
    before = certs.cert.read_bytes()
    assert ensure_certs(tmp_path, ["other"]).cert.read_bytes() == before


def test_webhook_flag_needs_a_cert_dir(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["operator", "run", "--webhook"]) == 2
    assert "--webhook needs --webhook-cert-dir" in capsys.readouterr().err
