"""Kueue as an optional dev-cluster component: its kueue-controller-manager runs as a host
process (like KWOK), its CRDs and its own webhooks (defaulting and validation of Workloads,
ClusterQueues, ResourceFlavors, ...) are installed from the release's module source.

Kueue normally runs in a pod behind a Service and manages its own certificates; here the cluster's
CA issues a serving certificate for 127.0.0.1 and the webhook configurations point at the host by
URL, so no Service, Secret or in-cluster Deployment is needed. Only the webhooks for Kueue's own
kinds are registered: kubetrain's TrainingJob is an external framework (Kueue builds no
controller for it) and Kueue's pod, batch/job and other integrations are off.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from kubetrain import tls
from kubetrain.devcluster.pki import Pki

# Kueue reads its metrics serving certificate from this fixed path whenever its internal
# certificate management is off (cmd/kueue/main.go in v0.17.0); the metrics endpoint itself is off.
METRICS_CERT_DIR = Path("/etc/kueue/metrics/certs")
EXTERNAL_FRAMEWORK = "TrainingJob.v1alpha1.kubetrain.io"
NAMESPACE = "kueue-system"
_OWN_KINDS = "-kueue-x-k8s-io-"


def write_certs(directory: Path, pki: Pki) -> Path:
    """A webhook serving certificate for 127.0.0.1 signed by the cluster's CA; returns its dir."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key = serialization.load_pem_private_key(pki.ca_key.read_bytes(), password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise TypeError(f"{pki.ca_key}: expected the EC key write_pki makes")
    ca_cert = x509.load_pem_x509_certificate(pki.ca_cert.read_bytes())
    key = tls.new_key()
    cert = tls.issue(tls.name("kueue-webhook"), key.public_key(), ca_cert.subject, ca_key,
                     usages=[ExtendedKeyUsageOID.SERVER_AUTH], hosts=["127.0.0.1", "localhost"])
    tls.write_key(directory / "tls.key", key)
    tls.write_cert(directory / "tls.crt", cert)
    if not (METRICS_CERT_DIR / "tls.crt").exists():
        METRICS_CERT_DIR.mkdir(parents=True, exist_ok=True)
        tls.write_key(METRICS_CERT_DIR / "tls.key", key)
        tls.write_cert(METRICS_CERT_DIR / "tls.crt", cert)
    return directory


def configuration(webhook_port: int, health_port: int, cert_dir: Path) -> dict[str, Any]:
    """Kueue's Configuration (config.kueue.x-k8s.io/v1beta2) for one host process: no leader
    election, no metrics server, webhooks on 127.0.0.1, TrainingJob an external framework, only
    labelled jobs managed."""
    return {
        "apiVersion": "config.kueue.x-k8s.io/v1beta2",
        "kind": "Configuration",
        "namespace": NAMESPACE,
        "manageJobsWithoutQueueName": False,
        "internalCertManagement": {"enable": False},
        "leaderElection": {"leaderElect": False},
        "health": {"healthProbeBindAddress": f"127.0.0.1:{health_port}"},
        "metrics": {"bindAddress": "0"},
        "webhook": {"port": webhook_port, "host": "127.0.0.1", "certDir": str(cert_dir)},
        "integrations": {"frameworks": [], "externalFrameworks": [EXTERNAL_FRAMEWORK]},
        "featureGates": {"VisibilityOnDemand": False},
    }


def argv(kueue: Path, config: Path, kubeconfig: Path) -> list[str]:
    return [str(kueue), f"--config={config}", f"--kubeconfig={kubeconfig}", "--zap-log-level=2"]


def crd_manifests(release_dir: Path) -> list[dict[str, Any]]:
    """Kueue's CRDs as the release ships them, without conversion webhooks: every client here
    (kueue itself, the operator, the tests) speaks the storage version v1beta2."""
    return [yaml.safe_load(p.read_text()) for p in sorted((release_dir / "crd").glob("*.yaml"))]


def webhook_manifests(release_dir: Path, port: int, ca_bundle: str) -> list[dict[str, Any]]:
    """Kueue's webhook configurations, cut to its own kinds and pointed at the host process."""
    docs = [d for d in yaml.safe_load_all((release_dir / "webhooks.yaml").read_text()) if d]
    out = []
    for doc in docs:
        hooks = []
        for hook in doc["webhooks"]:
            path = hook["clientConfig"]["service"]["path"]
            if _OWN_KINDS not in path:
                continue
            hook["clientConfig"] = {"url": f"https://127.0.0.1:{port}{path}", "caBundle": ca_bundle}
            hook.pop("namespaceSelector", None)
            hooks.append(hook)
        doc["metadata"] = {"name": f"kueue-{doc['metadata']['name']}"}
        doc["webhooks"] = hooks
        out.append(doc)
    return out


def release_dir(kueue_binary: Path) -> Path:
    """Where build_binaries.sh put the CRDs and webhook manifests beside the binary."""
    return kueue_binary.parent


def available(kueue_binary: Path) -> bool:
    return os.access(kueue_binary, os.X_OK) and (release_dir(kueue_binary) / "webhooks.yaml").exists()
