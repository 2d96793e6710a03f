"""Certificates and keys for one dev cluster: a CA, the API server's serving certificate, an admin
client certificate (group system:masters) and the service-account signing key pair.

Generated per cluster so two clusters never trust each other's credentials.
"""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID
from pydantic import BaseModel, ConfigDict

from kubetrain import tls


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

    def node_credentials(self, node: str) -> tuple[Path, Path]:
        """The client certificate and key of kubelet `node` (user system:node:NAME, group
        system:nodes: what the Node authorizer expects)."""
        directory = self.ca_cert.parent
        return directory / f"node-{node}.crt", directory / f"node-{node}.key"

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


def write_pki(
    directory: Path, service_ip: str, extra_hosts: tuple[str, ...] = (), nodes: tuple[str, ...] = ()
) -> Pki:
    """Creates every credential the cluster needs under `directory`.

    `service_ip` is the first address of the service range: pods reach the API server as
    `kubernetes.default.svc`, so its serving certificate must name that address too;
    `extra_hosts` are further addresses it serves on (the host's own, for a real node's pods).
    `nodes` are the real kubelets that get client certificates.
    """
    directory.mkdir(parents=True, exist_ok=True)
    pki = Pki.in_directory(directory)
    ca_cert, ca_key = tls.self_signed_ca("kubetrain-dev-ca")
    tls.write_key(pki.ca_key, ca_key)
    tls.write_cert(pki.ca_cert, ca_cert)

    hosts = ["localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
             "kubernetes.default.svc.cluster.local", "127.0.0.1", service_ip, *extra_hosts]
    serving_key = tls.new_key()
    tls.write_key(pki.serving_key, serving_key)
    tls.write_cert(pki.serving_cert, tls.issue(tls.name("kube-apiserver"), serving_key.public_key(), ca_cert.subject,
                                               ca_key, usages=[ExtendedKeyUsageOID.SERVER_AUTH], hosts=hosts))

    admin_key = tls.new_key()
    tls.write_key(pki.admin_key, admin_key)
    tls.write_cert(pki.admin_cert, tls.issue(tls.name("kubetrain-admin", "system:masters"), admin_key.public_key(),
                                             ca_cert.subject, ca_key, usages=[ExtendedKeyUsageOID.CLIENT_AUTH]))

    for node in nodes:
        cert_path, key_path = pki.node_credentials(node)
        node_key = tls.new_key()
        tls.write_key(key_path, node_key)
        tls.write_cert(cert_path, tls.issue(tls.name(f"system:node:{node}", "system:nodes"), node_key.public_key(),
                                            ca_cert.subject, ca_key, usages=[ExtendedKeyUsageOID.CLIENT_AUTH]))

    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    tls.write_key(pki.sa_private_key, sa_key)
    pki.sa_public_key.write_bytes(
        sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return pki
