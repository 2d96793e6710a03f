"""The dev cluster's Kueue (devcluster/kueue.py): its configuration for a host process and its
webhook configurations cut to Kueue's own kinds and pointed at the host by URL."""

from __future__ import annotations

from pathlib import Path

import yaml

from kubetrain.devcluster.kueue import EXTERNAL_FRAMEWORK, configuration, webhook_manifests


def hook(name: str, path: str) -> dict[str, object]:
    return {"name": name, "clientConfig": {"service": {"name": "webhook-service", "namespace": "system", "path": path}},
            "namespaceSelector": {"matchExpressions": []}, "rules": []}


def test_only_kueues_own_webhooks_are_registered_and_they_point_at_the_host(tmp_path: Path) -> None:
    mutating = {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
                "metadata": {"name": "mutating-webhook-configuration"},
                "webhooks": [hook("mworkload.kb.io", "/mutate-kueue-x-k8s-io-v1beta2-workload"),
                             hook("mpod.kb.io", "/mutate--v1-pod"),
                             hook("mjob.kb.io", "/mutate-batch-v1-job")]}
    (tmp_path / "webhooks.yaml").write_text(yaml.safe_dump_all([mutating]))

    [config] = webhook_manifests(tmp_path, 9443, "Q0E=")

    assert config["metadata"] == {"name": "kueue-mutating-webhook-configuration"}
    assert [h["name"] for h in config["webhooks"]] == ["mworkload.kb.io"]
    assert config["webhooks"][0]["clientConfig"] == {
        "url": "https://127.0.0.1:9443/mutate-kueue-x-k8s-io-v1beta2-workload", "caBundle": "Q0E="}
    assert "namespaceSelector" not in config["webhooks"][0]


def test_the_configuration_makes_trainingjob_an_external_framework_and_runs_alone(tmp_path: Path) -> None:
    config = configuration(9443, 8081, tmp_path)
    assert config["integrations"] == {"frameworks": [], "externalFrameworks": [EXTERNAL_FRAMEWORK]}
    assert config["leaderElection"] == {"leaderElect": False}
    assert config["internalCertManagement"] == {"enable": False}
    assert config["webhook"] == {"port": 9443, "host": "127.0.0.1", "certDir": str(tmp_path)}
    assert config["manageJobsWithoutQueueName"] is False
