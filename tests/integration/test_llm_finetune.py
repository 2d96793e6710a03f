"""The causal-lm task end to end on the executing local node, with no hub: a toy Llama-style model
and instruction data built here, `examples/llm-finetune-lora.yaml` applied with kubectl, two DDP
workers fine-tune LoRA adapters, and the job reaches Succeeded with progress and perplexity in its
status and in `kubectl get tj`, the adapter's digest in provenance, and a ModelVersion promoted by
its perplexity gate; the same job with a gate it cannot pass is refused promotion."""

from __future__ import annotations

import copy
import hashlib
import subprocess
import sys
from pathlib import Path

import kubernetes
import pytest
import yaml

from kubetrain.devcluster.cluster import LocalCluster
from kubetrain_trainer import storage
from tests.builders import example
from tests.jobs import Jobs
from tests.local_training import wait_succeeded_while_alive
from tests.operator_process import OperatorProcess
from tests.registry import Registry

pytestmark = [pytest.mark.cluster, pytest.mark.training]


def toy(kind: str, out: Path) -> Path:
    subprocess.run([sys.executable, "-m", "kubetrain_trainer.llm.toy", kind, "--out", str(out), "--rows", "300"],
                   check=True)
    return out


def test_lora_fine_tuning_reports_perplexity_and_its_gate_promotes_or_refuses(
    cluster: LocalCluster, api: kubernetes.client.ApiClient, namespace: str, operator: OperatorProcess,
    tmp_path: Path,
) -> None:
    model, data = toy("model", tmp_path / "toy-llama"), toy("instructions", tmp_path / "facts.jsonl")
    passing = example("llm-finetune-lora.yaml")
    passing["spec"]["task"]["finetune"]["checkpointUri"] = f"file://{model}"
    passing["spec"]["dataset"]["uri"] = f"file://{data}"
    passing["spec"]["output"]["uri"] = f"file://{tmp_path / 'output'}"
    # The same run, one worker and one epoch, under a gate no run can pass (perplexity is >= 1).
    refused = copy.deepcopy(passing)
    refused["metadata"]["name"] = "facts-lora-refused"
    refused["spec"].update(workers=1, output={"uri": f"file://{tmp_path / 'refused'}"})
    refused["spec"]["task"]["epochs"] = 1
    refused["spec"]["evaluation"]["gates"] = [{"metric": "perplexity", "op": "<", "value": 1.0}]
    for manifest in (passing, refused):
        cluster.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(manifest))
    jobs, pods = Jobs(api, namespace), cluster.state_dir / "localnode" / "pods"
    name = passing["metadata"]["name"]
    try:
        status = wait_succeeded_while_alive(jobs, name, pods)
        refused_status = wait_succeeded_while_alive(jobs, "facts-lora-refused", pods)
    except AssertionError as exc:
        pytest.fail(f"job did not succeed: {exc}; operator log:\n{operator.log_tail()}")

    metrics = status["metrics"]
    assert set(metrics) == {"loss", "perplexity", "exactMatch", "rougeL"}, metrics
    assert metrics["perplexity"] <= 5.0, metrics
    assert status["progress"]["percent"] == pytest.approx(100.0) and status["restarts"] == 0
    provenance = status["provenance"]
    adapter = tmp_path / "output" / "adapter"
    assert provenance["weightsUri"] == f"file://{adapter}"
    assert provenance["weightsDigest"] == storage.content_digest(str(adapter))
    assert provenance["datasetDigest"] == "sha256:" + hashlib.sha256(data.read_bytes()).hexdigest()
    assert provenance["datasetProfile"]["tokens"] > 0 and provenance["datasetLicense"] == "CC-BY-4.0"

    promoted = jobs.wait_condition(name, "Promoted")
    assert promoted["status"] == "True", promoted
    version = Registry(api, namespace).version(jobs.status(name)["modelVersion"])
    assert version is not None and version["spec"]["metrics"] == metrics
    assert version["spec"]["provenance"]["weightsDigest"] == provenance["weightsDigest"]
    listing = cluster.kubectl("get", "tj", name, "-n", namespace).stdout
    assert "PERPLEXITY" in listing and f"{metrics['perplexity']:.4g}"[:3] in listing and " 100" in listing, listing

    gate = jobs.wait_condition("facts-lora-refused", "Promoted")
    assert (gate["status"], gate["reason"]) == ("False", "GateFailed"), gate
    assert "perplexity" in gate["message"] and "modelVersion" not in refused_status
