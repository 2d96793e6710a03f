"""A private CA and the webhook's serving certificate, generated once into the cert dir when
no certificate was provided (a Helm chart or cert-manager would mount its own instead)."""

from __future__ import annotations

from pathlib import Path

from cryptography.x509.oid import ExtendedKeyUsageOID
from pydantic import BaseModel, ConfigDict

from kubetrain import tls


class WebhookCerts(BaseModel):
    model_config = ConfigDict(frozen=True)

    ca: Path
    cert: Path
    key: Path

    @classmethod
    def in_dir(cls, directory: Path) -> WebhookCerts:
        return cls(ca=directory / "ca.crt", cert=directory / "tls.crt", key=directory / "tls.key")


def ensure_certs(directory: Path, hosts: list[str]) -> WebhookCerts:
    """Keeps existing files, so a restarted operator serves the certificate the API server
    already trusts."""
    certs = WebhookCerts.in_dir(directory)
    if certs.cert.exists() and certs.key.exists() and certs.ca.exists():
        return certs
    directory.mkdir(parents=True, exist_ok=True)
    ca, ca_key = tls.self_signed_ca("kubetrain-webhook-ca")
    key = tls.new_key()
    cert = tls.issue(tls.name(hosts[0]), key.public_key(), ca.subject, ca_key,
                     usages=[ExtendedKeyUsageOID.SERVER_AUTH], hosts=hosts)
    tls.write_cert(certs.ca, ca)
    tls.write_cert(certs.cert, cert)
    tls.write_key(certs.key, key)
    return certs

