"""Running an example on the executing local node to completion, for the end-to-end tests of
each runtime: the same generated data set, so the same accuracy bar holds for every runtime."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import yaml

from kubetrain.devcluster.cluster import LocalCluster
from tests.jobs import Jobs, example
from tests.operator_process import OperatorProcess

ACCURACY_BAR = 0.80
HELD_OUT_METRICS = {"loss", "accuracy", "precision", "recall", "f1"}


def train_example_to_success(
    example_name: str, cluster: LocalCluster, api: kubernetes.client.ApiClient, namespace: str,
    operator: OperatorProcess, work: Path, timeout: float,
) -> tuple[Jobs, str, dict[str, Any]]:
    """Applies the example with `kubectl apply`, on a generated tabular data set and with its
    output under `work`; returns the jobs client, the job's name and its final status."""
    data = work / "tabular.csv"
    subprocess.run(
        [sys.executable, "-m", "kubetrain_trainer.datagen", "tabular", "--out", str(data), "--rows", "2000", "--seed", "0"],
        check=True,
    )
    manifest = example(example_name)
    manifest["spec"]["dataset"]["uri"] = f"file://{data}"
    manifest["spec"]["output"]["uri"] = f"file://{work / 'output'}"
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(manifest))
    jobs = Jobs(api, namespace)
    name = manifest["metadata"]["name"]
    try:
        status = jobs.wait_phase(name, "Succeeded", timeout=timeout)
    except AssertionError:
        pytest.fail(f"job did not succeed; operator log:\n{operator.log_tail()}\nstatus: {jobs.status(name)}")
    return jobs, name, status
