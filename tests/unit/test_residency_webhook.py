"""The webhook's certificate and flags: generated once with the host the API server calls, kept
across restarts (the registered caBundle must stay valid), and refused without a cert dir; in a
cluster, registered by Service reference with the Service's DNS names in the certificate."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import kopf
import pytest
from cryptography import x509

from kubetrain.cli import main
from kubetrain.controller.config import WebhookConfig, WebhookService
from kubetrain.controller.webhook_certs import ensure_certs
from kubetrain.controller.webhook_server import ServiceWebhookServer, service_client_config, webhook_server


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


def test_in_a_cluster_the_webhook_is_registered_by_service_reference(tmp_path: Path) -> None:
    service = WebhookService.parse("kubetrain-system/kubetrain-webhook", 443)
    config = service_client_config(kopf.WebhookClientConfig(url="https://127.0.0.1:9443", caBundle="Q0E="), service)
    assert config == {
        "service": {"namespace": "kubetrain-system", "name": "kubetrain-webhook", "port": 443, "path": ""},
        "caBundle": "Q0E=",
    }
    server = webhook_server(WebhookConfig(cert_dir=tmp_path, service=service))
    assert isinstance(server, ServiceWebhookServer)
    cert = x509.load_pem_x509_certificate((tmp_path / "tls.crt").read_bytes())
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName)[:2] == [
        "kubetrain-webhook.kubetrain-system.svc", "kubetrain-webhook.kubetrain-system.svc.cluster.local",
    ]


@pytest.mark.parametrize("value", ["kubetrain-webhook", "/name", "ns/", "a/b/c"])
def test_a_webhook_service_without_namespace_and_name_is_refused(
    value: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["operator", "run", "--webhook", f"--webhook-cert-dir={tmp_path}", f"--webhook-service={value}"]
    assert main(argv) == 2
    assert f"--webhook-service {value!r}: expected NAMESPACE/NAME" in capsys.readouterr().err
