"""Certificates and keys for one dev cluster: a CA, the API server's serving certificate, an admin
client certificate (group system:masters) and the service-account signing key pair.

Generated per cluster so two clusters never trust each other's credentials.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pydantic import BaseModel, ConfigDict

_VALIDITY = dt.timedelta(days=365)


class Pki(BaseModel):
    """Paths of the files write_pki produced."""

    model_config = ConfigDict(frozen=True)

    ca_cert: Path
    ca_key: Path
    serving_cert: Path
    serving_key: Path
    admin_cert: Path
    admin_key: Path
    sa_private_key: Path
    sa_public_key: Path

    @classmethod
    def in_directory(cls, directory: Path) -> Pki:
        """Where write_pki puts (and readers find) each file."""
        return cls(
            ca_cert=directory / "ca.crt",
            ca_key=directory / "ca.key",
            serving_cert=directory / "apiserver.crt",
            serving_key=directory / "apiserver.key",
            admin_cert=directory / "admin.crt",
            admin_key=directory / "admin.key",
            sa_private_key=directory / "sa.key",
            sa_public_key=directory / "sa.pub",
        )


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def _name(common_name: str, organization: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(attrs)


def _issue(
    subject: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    ca_name: x509.Name,
    ca_key: ec.EllipticCurvePrivateKey,
    *,
    is_ca: bool = False,
    usages: list[x509.ObjectIdentifier] | None = None,
    sans: list[x509.GeneralName] | None = None,
) -> x509.Certificate:
    now = dt.datetime.now(dt.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_name)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
    )
    if usages:
        builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(ca_key, hashes.SHA256())


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def write_pki(directory: Path, service_ip: str) -> Pki:
    """Creates every credential the cluster needs under `directory`.

    `service_ip` is the first address of the service range: pods reach the API server as
    `kubernetes.default.svc`, so its serving certificate must name that address too.
    """
    directory.mkdir(parents=True, exist_ok=True)
    pki = Pki.in_directory(directory)
    ca_key = _key()
    ca_name = _name("kubetrain-dev-ca")
    _write_key(pki.ca_key, ca_key)
    _write_cert(pki.ca_cert, _issue(ca_name, ca_key.public_key(), ca_name, ca_key, is_ca=True))

    serving_key = _key()
    sans: list[x509.GeneralName] = [
        x509.DNSName(n)
        for n in (
            "localhost",
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
        )
    ]
    sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ("127.0.0.1", service_ip)]
    _write_key(pki.serving_key, serving_key)
    _write_cert(
        pki.serving_cert,
        _issue(
            _name("kube-apiserver"),
            serving_key.public_key(),
            ca_name,
            ca_key,
            usages=[ExtendedKeyUsageOID.SERVER_AUTH],
            sans=sans,
        ),
    )

    admin_key = _key()
    _write_key(pki.admin_key, admin_key)
    _write_cert(
        pki.admin_cert,
        _issue(
            _name("kubetrain-admin", "system:masters"),
            admin_key.public_key(),
            ca_name,
            ca_key,
            usages=[ExtendedKeyUsageOID.CLIENT_AUTH],
        ),
    )

    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    _write_key(pki.sa_private_key, sa_key)
    pki.sa_public_key.write_bytes(
        sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return pki
