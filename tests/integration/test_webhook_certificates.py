"""The webhook's certificate on the real control plane: one due at start is renewed before it is
served, and files replaced while the operator runs (its own renewal, or a mounted Secret updated
by its issuer) are served and registered without a restart."""

from __future__ import annotations

import base64
import datetime as dt
import ssl
from collections.abc import Iterator
from pathlib import Path

import kubernetes
import pytest
from cryptography import x509

from kubetrain import tls
from kubetrain.controller.webhook_certs import WebhookCerts, ensure_certs, write_atomically
from kubetrain.devcluster.cluster import LocalCluster
from tests.builders import example
from tests.helpers import wait_for
from tests.jobs import Jobs
from tests.operator_process import WEBHOOK_CONFIGURATION, OperatorProcess

pytestmark = pytest.mark.cluster

HOSTS = ["127.0.0.1", "localhost"]


def served(port: int) -> x509.Certificate:
    return x509.load_pem_x509_certificate(ssl.get_server_certificate(("127.0.0.1", port)).encode())


def serial_served(port: int) -> int | None:
    """The served certificate's serial number; None in the moment kopf's server is re-listening
    with new files (it closes and reopens its socket when the files change)."""
    try:
        return int(served(port).serial_number)
    except ConnectionRefusedError:
        return None


def registered_ca(api: kubernetes.client.ApiClient) -> bytes:
    config = kubernetes.client.AdmissionregistrationV1Api(api).read_validating_webhook_configuration(
        WEBHOOK_CONFIGURATION)
    return base64.b64decode(config.webhooks[0].client_config.ca_bundle)


@pytest.fixture
def operator_with_due_certificate(
    cluster: LocalCluster, crds: Path, sole_operator: None, tmp_path: Path
) -> Iterator[OperatorProcess]:
    proc = OperatorProcess(cluster.kubeconfig, tmp_path / "operator" / "operator.log")
    # 300 days into its year: due (a third of its life is left at 122 days).
    ensure_certs(tmp_path / "operator" / "webhook-certs", HOSTS,
                 now=dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=300))
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


def test_due_certificates_are_renewed_and_replaced_ones_served_without_a_restart(
    operator_with_due_certificate: OperatorProcess, api: kubernetes.client.ApiClient, namespace: str, tmp_path: Path
) -> None:
    proc = operator_with_due_certificate
    certs = WebhookCerts.in_dir(tmp_path / "operator" / "webhook-certs")
    now = dt.datetime.now(dt.timezone.utc)
    cert = served(proc.webhook_port)
    assert cert.not_valid_after_utc > now + dt.timedelta(days=360), "renewed at start"
    assert cert.issuer == x509.load_pem_x509_certificate(certs.ca.read_bytes()).subject

    # A new CA and certificate, swapped in as the kubelet updates a Secret (or cert-manager renews).
    ca, ca_key = tls.self_signed_ca("rotated-ca")
    key = tls.new_key()
    rotated = tls.issue(tls.name("127.0.0.1"), key.public_key(), ca.subject, ca_key, hosts=HOSTS)
    write_atomically(certs.ca.parent, {"ca.crt": tls.cert_pem(ca), "ca.key": tls.key_pem(ca_key),
                                       "tls.crt": tls.cert_pem(rotated), "tls.key": tls.key_pem(key)})
    wait_for(lambda: serial_served(proc.webhook_port) == rotated.serial_number, timeout=60,
             what="the rotated certificate served")
    wait_for(lambda: registered_ca(api) == tls.cert_pem(ca), timeout=30, what="the rotated CA registered")
    assert proc.running(), "no restart"

    # The API server trusts the rotated certificate: admission (the submitted-by webhook) works.
    jobs = Jobs(api, namespace)
    name = jobs.create(example("pytorch-ddp.yaml"))
    assert jobs.get(name)["metadata"]["annotations"]["kubetrain.io/submitted-by"]
