"""The local node really executes pods: command and env reach a process, its exit becomes the
pod's phase and termination message, and deleting the pod kills the process."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path
from typing import Any

import kubernetes
import pytest

from tests.helpers import wait_for

pytestmark = pytest.mark.cluster

LOCAL = {
    "nodeSelector": {"kubetrain.io/node-pool": "local"},
    "tolerations": [{"key": "kubetrain.io/local", "operator": "Exists", "effect": "NoSchedule"}],
}


def python_pod(name: str, code: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {
            **LOCAL,
            "restartPolicy": "Never",
            "containers": [
                {
                    "name": "main",
                    "image": "unused:local",
                    "command": ["python", "-c", textwrap.dedent(code)],
                    "env": [{"name": k, "value": v} for k, v in (env or {}).items()],
                    "terminationMessagePolicy": "FallbackToLogsOnError",
                }
            ],
        },
    }


def test_pod_runs_as_process_and_reports_exit(api: kubernetes.client.ApiClient, namespace: str) -> None:
    core = kubernetes.client.CoreV1Api(api)
    code = """
        import os, pathlib
        pathlib.Path(os.environ["KUBETRAIN_TERMINATION_MESSAGE_PATH"]).write_text("greeting=" + os.environ["GREETING"])
    """
    core.create_namespaced_pod(namespace, python_pod("hello", code, {"GREETING": "hi"}))
    pod = wait_for(
        lambda: (p := core.read_namespaced_pod("hello", namespace)).status.phase == "Succeeded" and p,
        timeout=60,
        what="the pod to succeed",
    )
    assert pod.spec.node_name == "local-0"
    terminated = pod.status.container_statuses[0].state.terminated
    assert terminated.exit_code == 0
    assert terminated.message == "greeting=hi"


def test_failing_pod_reports_log_tail(api: kubernetes.client.ApiClient, namespace: str) -> None:
    core = kubernetes.client.CoreV1Api(api)
    core.create_namespaced_pod(namespace, python_pod("boom", "import sys; print('it broke'); sys.exit(7)"))
    pod = wait_for(
        lambda: (p := core.read_namespaced_pod("boom", namespace)).status.phase == "Failed" and p,
        timeout=60,
        what="the pod to fail",
    )
    terminated = pod.status.container_statuses[0].state.terminated
    assert terminated.exit_code == 7
    assert "it broke" in terminated.message


def test_deleting_pod_kills_its_process(
    api: kubernetes.client.ApiClient, namespace: str, tmp_path: Path
) -> None:
    core = kubernetes.client.CoreV1Api(api)
    pid_file = tmp_path / "pid"
    code = f"""
        import os, time
        open({str(pid_file)!r}, "w").write(str(os.getpid()))
        time.sleep(300)
    """
    core.create_namespaced_pod(namespace, python_pod("sleeper", code))
    wait_for(lambda: pid_file.exists() and pid_file.read_text(), timeout=60, what="the process to start")
    pid = int(pid_file.read_text())
    assert core.read_namespaced_pod("sleeper", namespace).status.phase == "Running"
    core.delete_namespaced_pod("sleeper", namespace)
    wait_for(
        lambda: not core.list_namespaced_pod(namespace, field_selector="metadata.name=sleeper").items,
        timeout=30,
        what="the pod to be removed",
    )

    def gone() -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"

    wait_for(gone, timeout=10, what="the process to be killed")


def test_pod_gets_a_service_account_token_that_works(
    api: kubernetes.client.ApiClient, namespace: str
) -> None:
    core = kubernetes.client.CoreV1Api(api)
    code = """
        import os, ssl, urllib.request, pathlib
        sa = pathlib.Path(os.environ["KUBETRAIN_SERVICEACCOUNT_DIR"])
        ctx = ssl.create_default_context(cafile=str(sa / "ca.crt"))
        host, port = os.environ["KUBERNETES_SERVICE_HOST"], os.environ["KUBERNETES_SERVICE_PORT"]
        req = urllib.request.Request(f"https://{host}:{port}/version",
                                     headers={"Authorization": "Bearer " + (sa / "token").read_text()})
        with urllib.request.urlopen(req, context=ctx) as resp:
            pathlib.Path(os.environ["KUBETRAIN_TERMINATION_MESSAGE_PATH"]).write_text(str(resp.status))
    """
    core.create_namespaced_pod(namespace, python_pod("token", code))
    pod = wait_for(
        lambda: (p := core.read_namespaced_pod("token", namespace)).status.phase in ("Succeeded", "Failed") and p,
        timeout=60,
        what="the pod to finish",
    )
    terminated = pod.status.container_statuses[0].state.terminated
    assert (pod.status.phase, terminated.message) == ("Succeeded", "200"), terminated.message
