"""The webhook's private CA and serving certificate when the operator makes its own (outside the
Helm chart, which mounts a Secret: its own or cert-manager's), renewed before they expire.

The webhook configuration's failurePolicy is Fail, so an expired certificate would refuse every
TrainingJob write. The serving certificate is renewed from the kept CA key when a third of its
life is left; the CA (ten years) is replaced when it would expire before a new serving certificate
does. kopf's webhook server re-reads the files when they change and registers the new CA bundle,
so neither needs a restart. All three files change in one step, as the kubelet updates a mounted
Secret: they are links into a `..data` directory that is swapped by one rename, so kopf never
reads a certificate beside the key of another. A read-only directory (a mounted Secret) is left to
whoever issued it.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import shutil
import tempfile
import threading
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID
from pydantic import BaseModel, ConfigDict

from kubetrain import tls

CA_NAME = "kubetrain-webhook-ca"
DATA_LINK = "..data"
RENEWAL_CHECK_SECONDS = 3600.0

log = logging.getLogger("kubetrain.webhook")


class WebhookCerts(BaseModel):
    model_config = ConfigDict(frozen=True)

    ca: Path
    ca_key: Path
    cert: Path
    key: Path

    @classmethod
    def in_dir(cls, directory: Path) -> WebhookCerts:
        return cls(ca=directory / "ca.crt", ca_key=directory / "ca.key", cert=directory / "tls.crt",
                   key=directory / "tls.key")


class Renewal(BaseModel):
    """What is due: nothing, a new serving certificate from the kept CA, or both anew."""

    model_config = ConfigDict(frozen=True)

    serving: bool
    ca: bool


def renewal(ca: x509.Certificate | None, cert: x509.Certificate | None, now: dt.datetime,
            validity: dt.timedelta = tls.VALIDITY) -> Renewal:
    """`ca`: the CA this operator can sign with (None: none kept, e.g. files made elsewhere or
    by an older version). The serving certificate is due with a third of `validity` left, or
    when the CA would expire before a new one; a due certificate without a usable CA gets a new
    CA too (its caBundle is registered anew)."""
    ca_due = ca is None or ca.not_valid_after_utc < now + validity
    serving_due = cert is None or cert.not_valid_after_utc - now <= validity / 3 or (ca is not None and ca_due)
    return Renewal(serving=serving_due, ca=serving_due and ca_due)


def ensure_certs(directory: Path, hosts: list[str], now: dt.datetime | None = None) -> WebhookCerts:
    """Makes or renews what is due; keeps what is not, so a restarted operator serves the
    certificate the API server already trusts."""
    certs = WebhookCerts.in_dir(directory)
    complete = certs.cert.exists() and certs.key.exists() and certs.ca.exists()
    if complete and not os.access(directory, os.W_OK):
        return certs  # mounted: its issuer renews it
    now = now or dt.datetime.now(dt.timezone.utc)
    kept = _kept_ca(certs) if complete else None
    due = renewal(kept[0] if kept else None, _read_cert(certs.cert) if complete else None, now)
    if not due.serving:
        return certs
    ca, ca_key = tls.self_signed_ca(CA_NAME, now=now) if due.ca or kept is None else kept
    key = tls.new_key()
    cert = tls.issue(tls.name(hosts[0]), key.public_key(), ca.subject, ca_key,
                     usages=[ExtendedKeyUsageOID.SERVER_AUTH], hosts=hosts, now=now)
    write_atomically(directory, {
        certs.ca.name: tls.cert_pem(ca), certs.ca_key.name: tls.key_pem(ca_key),
        certs.cert.name: tls.cert_pem(cert), certs.key.name: tls.key_pem(key),
    })
    return certs


def _kept_ca(certs: WebhookCerts) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None:
    if not certs.ca_key.exists():
        return None
    key = serialization.load_pem_private_key(certs.ca_key.read_bytes(), password=None)
    return (_read_cert(certs.ca), key) if isinstance(key, ec.EllipticCurvePrivateKey) else None


def _read_cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def write_atomically(directory: Path, files: dict[str, bytes]) -> None:
    """Writes `files` into a new directory and points `..data` at it with one rename, as the
    kubelet updates a Secret volume; each name is a link through `..data` (made once, replacing
    a plain file of an older layout)."""
    directory.mkdir(parents=True, exist_ok=True)
    staged = Path(tempfile.mkdtemp(prefix="..certs-", dir=directory))
    staged.chmod(0o700)
    for name, content in files.items():
        path = staged / name
        path.write_bytes(content)
        path.chmod(0o600 if name.endswith(".key") else 0o644)
    data = directory / DATA_LINK
    previous = data.resolve() if data.is_symlink() else None
    _replace_with_link(data, staged.name)
    for name in files:
        entry = directory / name
        if not entry.is_symlink():
            _replace_with_link(entry, f"{DATA_LINK}/{name}")
    if previous is not None and previous != staged:
        shutil.rmtree(previous, ignore_errors=True)


def _replace_with_link(path: Path, target: str) -> None:
    temporary = path.with_name(f"{path.name}.tmp")
    temporary.unlink(missing_ok=True)
    temporary.symlink_to(target)
    os.replace(temporary, path)


class CertRenewer:
    """Renews the certificates while the operator runs (ensure_certs every `interval` seconds);
    kopf's webhook server notices the new files and serves and registers them."""

    def __init__(self, directory: Path, hosts: list[str], interval: float = RENEWAL_CHECK_SECONDS) -> None:
        self.directory = directory
        self.hosts = hosts
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="kubetrain-cert-renewal", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                ensure_certs(self.directory, self.hosts)
            except Exception as exc:  # a thread nobody joins: an error must not end the renewals
                log.error("webhook certificate in %s not renewed: %s; retrying in %gs", self.directory, exc,
                          self.interval)
