"""A kubeconfig that authenticates as a ServiceAccount, with a token from the TokenRequest API
(as the kubelet mounts one into a pod): running the operator with it outside the cluster proves
the RBAC the chart grants that account is enough, and no more is used."""

from __future__ import annotations

import base64
from pathlib import Path

import kubernetes
import yaml

from kubetrain.devcluster.cluster import LocalCluster


def service_account_kubeconfig(
    cluster: LocalCluster, api: kubernetes.client.ApiClient, namespace: str, name: str, path: Path
) -> Path:
    token = kubernetes.client.CoreV1Api(api).create_namespaced_service_account_token(
        name, namespace, {"spec": {"expirationSeconds": 3600}}
    )
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{
            "name": "cluster",
            "cluster": {
                "server": cluster.server,
                "certificate-authority-data": base64.b64encode(cluster.pki.ca_cert.read_bytes()).decode(),
            },
        }],
        "users": [{"name": name, "user": {"token": token.status.token}}],
        "contexts": [{"name": name, "context": {"cluster": "cluster", "user": name, "namespace": namespace}}],
        "current-context": name,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path
