"""The local node's pure parts: pod -> process launch, process -> pod status."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path
from typing import Any

import pytest

from kubetrain.devcluster.localnode.launch import (
    RENDEZVOUS_PORT_BASE,
    RENDEZVOUS_PORT_SPAN,
    LaunchError,
    plan_launch,
    rendezvous_port,
)
from kubetrain.devcluster.localnode.podstatus import terminated_status, termination_message


def pod(owner_uid: str = "job-uid", attempt: str = "0", **container: Any) -> dict[str, Any]:
    return {
        "metadata": {
            "name": "j-worker-1",
            "namespace": "ns",
            "uid": "pod-uid",
            "labels": {"kubetrain.io/attempt": attempt},
            "ownerReferences": [{"uid": owner_uid, "controller": True}],
        },
        "spec": {
            "hostname": "j-worker-1",
            "nodeName": "local-0",
            "containers": [{"name": "trainer", "image": "img", **container}],
        },
    }


def test_default_entrypoint_is_the_trainer_with_this_python(tmp_path: Path) -> None:
    launch = plan_launch(pod(), tmp_path, "127.0.0.1", 6443, None)
    assert launch.argv == [sys.executable, "-m", "kubetrain_trainer"]
    assert launch.cwd == tmp_path


def test_command_args_and_env_reach_the_process(tmp_path: Path) -> None:
    launch = plan_launch(
        pod(
            command=["python3", "-m", "x"],
            args=["--epochs", 3],
            env=[
                {"name": "A", "value": "1"},
                {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            ],
        ),
        tmp_path,
        "127.0.0.1",
        6443,
        tmp_path / "sa",
    )
    assert launch.argv == [sys.executable, "-m", "x", "--epochs", "3"]
    assert launch.env["A"] == "1"
    assert launch.env["POD"] == "j-worker-1"
    assert launch.env["KUBERNETES_SERVICE_PORT"] == "6443"
    assert launch.env["KUBETRAIN_SERVICEACCOUNT_DIR"] == str(tmp_path / "sa")
    assert launch.env["KUBETRAIN_TERMINATION_MESSAGE_PATH"] == str(tmp_path / "termination-log")


def test_rendezvous_is_rewritten_to_loopback_with_a_per_job_port(tmp_path: Path) -> None:
    env = [
        {"name": "MASTER_ADDR", "value": "j-worker-0.j"},
        {"name": "MASTER_PORT", "value": "29500"},
        {"name": "PET_MASTER_ADDR", "value": "j-worker-0.j"},
        {"name": "PET_MASTER_PORT", "value": "29500"},
    ]
    launch = plan_launch(pod(env=env), tmp_path, "127.0.0.1", 6443, None)
    port = launch.env["MASTER_PORT"]
    assert launch.env["MASTER_ADDR"] == launch.env["PET_MASTER_ADDR"] == "127.0.0.1"
    assert launch.env["PET_MASTER_PORT"] == port
    assert RENDEZVOUS_PORT_BASE <= int(port) < RENDEZVOUS_PORT_BASE + RENDEZVOUS_PORT_SPAN


def worker(index: int, owner_uid: str = "a", attempt: str = "0") -> dict[str, Any]:
    """Worker `index` of a job: its own name, hostname and uid, the job's owner and attempt."""
    raw = pod(owner_uid, attempt)
    raw["metadata"].update(name=f"j-worker-{index}", uid=f"pod-uid-{index}")
    raw["spec"]["hostname"] = f"j-worker-{index}"
    return raw


def test_rendezvous_port_is_shared_by_a_job_attempt_and_differs_across_jobs_and_attempts() -> None:
    assert rendezvous_port(worker(0)) == rendezvous_port(worker(1)), "both workers must meet on one port"
    assert rendezvous_port(pod("a")) != rendezvous_port(pod("b"))
    assert rendezvous_port(pod("a", "0")) != rendezvous_port(pod("a", "1"))


def test_pods_with_two_containers_are_refused(tmp_path: Path) -> None:
    p = pod()
    p["spec"]["containers"].append({"name": "sidecar", "image": "img"})
    with pytest.raises(LaunchError, match="exactly one container"):
        plan_launch(p, tmp_path, "127.0.0.1", 6443, None)


@pytest.mark.parametrize(
    ("written", "policy", "code", "expected"),
    [
        ('{"outcome": "Succeeded"}', "File", 0, '{"outcome": "Succeeded"}'),
        (None, "File", 1, ""),
        (None, "FallbackToLogsOnError", 1, "log tail"),
        (None, "FallbackToLogsOnError", 0, ""),
        ("written", "FallbackToLogsOnError", 1, "written"),
    ],
)
def test_termination_message_follows_the_kubelet_rules(
    written: str | None, policy: str, code: int, expected: str
) -> None:
    assert termination_message(written, "log tail", policy, code) == expected


def test_termination_message_is_cut_to_4kib() -> None:
    assert len(termination_message("x" * 10000, "", "File", 0)) == 4096


def test_terminated_status_shape() -> None:
    t0 = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    status = terminated_status(pod(), t0, t0 + dt.timedelta(seconds=5), 3, "why")
    assert status["phase"] == "Failed"
    term = status["containerStatuses"][0]["state"]["terminated"]
    assert (term["exitCode"], term["reason"], term["message"]) == (3, "Error", "why")
    assert term["finishedAt"] == "2026-01-01T00:00:05Z"
    assert terminated_status(pod(), t0, t0, 0, "")["phase"] == "Succeeded"


def test_command_and_args_expand_env_references_like_the_kubelet(tmp_path: Path) -> None:
    env = [{"name": "A", "value": "x"}]
    launch = plan_launch(
        pod(command=["echo", "$(A)"], args=["$(A)-$(MISSING)", "$$(A)"], env=env), tmp_path, "h", 1, None
    )
    assert launch.argv[1:] == ["x", "x-$(MISSING)", "$(A)"]


def ray_pod(pod_uid: str, attempt: str = "0", head: bool = False) -> dict[str, Any]:
    env = [
        {"name": "KUBETRAIN_RAY_HEAD_HOST", "value": "j-head.ns.svc"},
        {"name": "KUBETRAIN_RAY_GCS_PORT", "value": "6379"},
    ]
    if head:
        command, args = (
            ["python", "-m", "kubetrain_trainer.ray_head"],
            ["--port=$(KUBETRAIN_RAY_GCS_PORT)", "--", "python", "d.py"],
        )
    else:
        command, args = ["ray", "start"], ["--address=$(KUBETRAIN_RAY_HEAD_HOST):$(KUBETRAIN_RAY_GCS_PORT)", "--block"]
    raw = pod(attempt=attempt, command=command, args=args, env=env)
    raw["metadata"]["uid"] = pod_uid
    return raw


def flag(argv: list[str], name: str) -> str:
    [value] = [a.split("=", 1)[1] for a in argv if a.startswith(f"--{name}=")]
    return value


def test_ray_pods_of_one_attempt_share_a_loopback_head_and_keep_their_own_node_ports(tmp_path: Path) -> None:
    head = plan_launch(ray_pod("uid-h", head=True), tmp_path, "h", 1, None)
    workers = [plan_launch(ray_pod(f"uid-{i}"), tmp_path, "h", 1, None) for i in range(2)]
    gcs = head.env["KUBETRAIN_RAY_GCS_PORT"]
    assert gcs != "6379" and head.env["KUBETRAIN_RAY_HEAD_HOST"] == "127.0.0.1"
    assert flag(head.argv, "port") == gcs
    assert head.argv[head.argv.index("--"):] == ["--", "python", "d.py"], "node flags go before the driver"
    for worker in workers:
        assert flag(worker.argv, "address") == f"127.0.0.1:{gcs}"
        assert worker.argv[0].endswith("ray")
    launches = [head, *workers]
    for name in (
        "node-manager-port",
        "dashboard-agent-listen-port",
        "metrics-export-port",
        "min-worker-port",
        "temp-dir",
    ):
        assert len({flag(launch.argv, name) for launch in launches}) == 3, name
    assert all(len(flag(launch.argv, "temp-dir")) < 30 for launch in launches), "room for Ray's socket paths"
    next_attempt = plan_launch(ray_pod("uid-h2", attempt="1", head=True), tmp_path, "h", 1, None)
    assert next_attempt.env["KUBETRAIN_RAY_GCS_PORT"] != gcs


def test_a_head_runs_without_a_client_server_where_ray_client_is_not_installed(tmp_path: Path) -> None:
    raw = ray_pod("uid-h", head=True)
    raw["spec"]["containers"][0]["args"][1:1] = ["--ray-client-server-port=10001"]
    with_client = plan_launch(raw, tmp_path, "h", 1, None, ray_client=True)
    without = plan_launch(raw, tmp_path, "h", 1, None, ray_client=False)
    assert flag(with_client.argv, "ray-client-server-port") == "10001"
    assert not any(a.startswith("--ray-client-server-port") for a in without.argv)
    assert without.argv[without.argv.index("--"):] == ["--", "python", "d.py"]
    assert flag(without.argv, "port") == without.env["KUBETRAIN_RAY_GCS_PORT"]
