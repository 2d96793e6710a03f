"""The Python client in a pipeline step: submit the local example, follow it, and gate on its
metrics. Run it against any cluster your kubeconfig reaches (the dev cluster: `kubetrain dev up`,
then `export KUBECONFIG=$PWD/.kubetrain/dev/kubeconfig`, and the data set the example names):

    python examples/client.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

from kubetrain.client import Client

manifest = yaml.safe_load((Path(__file__).parent / "pytorch-ddp-local.yaml").read_text())
client = Client()  # the kubeconfig's current context and namespace
job = client.create(manifest)
for seen in client.watch(job.metadata.name, timeout=900):
    progress = seen.status.progress
    print(seen.status.phase.value, f"{progress.percent or 0:.0f}%" if progress else "")
finished = client.wait(job.metadata.name, timeout=10)
metrics = client.metrics(job.metadata.name)
print("metrics:", metrics)
sys.exit(0 if finished.status.phase.value == "Succeeded" and metrics.get("accuracy", 0) >= 0.8 else 1)
