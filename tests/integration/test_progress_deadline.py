"""runPolicy.progressDeadlineSeconds on the executing local node: users' scripts that report
through the SDK as a hung trainer would (once, then silence) or not at all are found Stalled with
a Warning Event, and restarted or failed as runPolicy.onStall says, while a script that keeps
reporting runs to success untouched. The operator wakes itself at the deadline: nothing but the
clock changes while a trainer is silent."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import yaml

from kubetrain.devcluster.cluster import LocalCluster
from tests.helpers import wait_for
from tests.jobs import Jobs
from tests.operator_process import OperatorProcess, metric

pytestmark = pytest.mark.cluster

# Long enough for a restarted script to start and report once on a loaded 2-core machine (its
# report is what closes the first stall), short enough to keep the tests brief.
DEADLINE = 15
REPORTS_ONCE_THEN_HANGS = """
    import time
    from kubetrain_trainer import sdk
    run = sdk.init(code_version="hangs/1", interval_seconds=0.1)
    run.progress(1, total_steps=100, epoch=1, total_epochs=1)
    time.sleep(3600)  # a hung collective: alive, silent
"""
NEVER_REPORTS = """
    import time
    time.sleep(3600)
"""
KEEPS_REPORTING = """
    import time
    from kubetrain_trainer import sdk
    with sdk.init(code_version="steady/1", interval_seconds=0.1) as run:
        for step in range(1, 41):  # 20 s, twice the deadline
            run.progress(step, total_steps=40)
            time.sleep(0.5)
"""


def submit(cluster: LocalCluster, namespace: str, work: Path, name: str, script: str, **run_policy: Any) -> str:
    path = work / f"{name}.py"
    path.write_text(textwrap.dedent(script))
    manifest = {
        "apiVersion": "kubetrain.io/v1alpha1", "kind": "TrainingJob", "metadata": {"name": name},
        "spec": {
            "image": "registry.example.com/acme/trainer:1", "command": ["python"], "args": [str(path)],
            "workers": 1, "nodePool": "local", "resources": {"cpu": "500m", "memory": "1Gi"},
            "runPolicy": {"progressDeadlineSeconds": DEADLINE, "activeDeadlineSeconds": 600, **run_policy},
        },
    }
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(manifest))
    return name


def reasons(jobs: Jobs, name: str, wanted: set[str]) -> list[str]:
    """The job's Event reasons once they include `wanted`: the operator posts Events after the
    status write a test waits for."""
    def posted() -> list[str] | None:
        seen = [e.reason for e in jobs.events(name)]
        return seen if wanted <= set(seen) else None

    return wait_for(posted, timeout=30, what=f"Events {sorted(wanted)} of {name}")


def test_a_trainer_that_stops_reporting_is_restarted_then_failed_at_the_backoff_limit(
    cluster: LocalCluster, api: kubernetes.client.ApiClient, namespace: str, operator: OperatorProcess,
    tmp_path: Path,
) -> None:
    jobs = Jobs(api, namespace)
    name = submit(cluster, namespace, tmp_path, "hangs", REPORTS_ONCE_THEN_HANGS, backoffLimit=1)
    # The SDK's one report reached status: the silence that follows is what is judged.
    wait_for(lambda: (jobs.status(name).get("progress") or {}).get("step") == 1, timeout=90, what="a progress report")
    stalled = jobs.wait_condition(name, "Stalled", timeout=60)
    assert stalled["status"] == "True" and stalled["reason"] == "ProgressDeadlineExceeded", stalled
    assert f"progressDeadlineSeconds: {DEADLINE}s" in stalled["message"], stalled

    status = jobs.wait_phase(name, "Failed", timeout=120)  # after the restarted trainer stalled too
    failed = next(c for c in status["conditions"] if c["type"] == "Failed")
    assert failed["reason"] == "BackoffLimitExceeded" and "no progress report" in failed["message"], failed
    assert status["restarts"] == 1, status
    # The restarted trainer's report closed the first stall.
    seen = reasons(jobs, name, {"ProgressDeadlineExceeded", "Restarting", "ProgressResumed", "Failed"})
    assert seen.count("ProgressDeadlineExceeded") == 2, seen  # one stall per attempt
    wait_for(lambda: metric(operator.metrics(), "kubetrain_job_stalls_total", namespace=namespace) == 2,
             what="both stalls counted")
    page = operator.metrics()
    assert metric(page, "kubetrain_job_restarts_total", namespace=namespace) == 1
    assert metric(page, "kubetrain_queue_wait_seconds_count", namespace=namespace) == 1


def test_on_stall_fail_fails_a_trainer_that_never_reports(
    cluster: LocalCluster, api: kubernetes.client.ApiClient, namespace: str, operator: OperatorProcess,
    tmp_path: Path,
) -> None:
    jobs = Jobs(api, namespace)
    name = submit(cluster, namespace, tmp_path, "silent", NEVER_REPORTS, onStall="Fail")
    status = jobs.wait_phase(name, "Failed", timeout=120)
    failed = next(c for c in status["conditions"] if c["type"] == "Failed")
    assert failed["reason"] == "ProgressDeadlineExceeded", failed
    assert "no progress report since every worker ran" in failed["message"], failed
    assert status["restarts"] == 0 and "progress" not in status, status
    reasons(jobs, name, {"ProgressDeadlineExceeded", "Failed"})
    wait_for(lambda: not jobs.pods(name), timeout=60, what="the silent pod stopped")


def test_a_trainer_that_keeps_reporting_is_never_stalled(
    cluster: LocalCluster, api: kubernetes.client.ApiClient, namespace: str, operator: OperatorProcess,
    tmp_path: Path,
) -> None:
    jobs = Jobs(api, namespace)
    name = submit(cluster, namespace, tmp_path, "steady", KEEPS_REPORTING, onStall="Fail")
    status = jobs.wait_phase(name, "Succeeded", timeout=180)
    assert jobs.condition(name, "Stalled") is None and status["restarts"] == 0, status
    assert status["progress"]["step"] == 40, status
