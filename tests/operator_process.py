"""The operator as a real subprocess (`kubetrain operator run`), for tests that claim behaviour:
it can be killed and restarted mid-job like a real Deployment's pod."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

import kubernetes

from kubetrain.devcluster.processes import free_port
from tests.helpers import wait_for

WEBHOOK_CONFIGURATION = "kubetrain-residency.kubetrain.io"


class OperatorProcess:
    """With `webhook` (the default) it serves the residency admission webhook on a port kept across
    restarts, and start() returns only once the API server's webhook configuration points at it.
    `admin_kubeconfig` is what the test itself reads the cluster with, when the operator's own
    credentials (`kubeconfig`, e.g. a ServiceAccount's) may not read the webhook configuration."""

    def __init__(
        self,
        kubeconfig: Path,
        log_path: Path,
        extra_args: list[str] | None = None,
        webhook: bool = True,
        admin_kubeconfig: Path | None = None,
    ) -> None:
        self.kubeconfig = kubeconfig
        self.admin_kubeconfig = admin_kubeconfig or kubeconfig
        self.log_path = log_path
        self.extra_args = extra_args or []
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.metrics_port = 0
        self.webhook_port = free_port() if webhook else 0

    def start(self) -> None:
        self.port = free_port()
        self.metrics_port = free_port()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [
                sys.executable, "-m", "kubetrain.cli", "operator", "run",
                f"--kubeconfig={self.kubeconfig}", f"--liveness-port={self.port}",
                f"--metrics-port={self.metrics_port}", "--log-level=DEBUG",
                *self._webhook_args(),
                *self.extra_args,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        log.close()
        wait_for(self._healthy, timeout=60, what=f"operator /healthz (log: {self.log_path})")
        if self.webhook_port:
            wait_for(self._webhook_registered, timeout=30, what=f"webhook registration (log: {self.log_path})")

    def _webhook_args(self) -> list[str]:
        if not self.webhook_port:
            return []
        cert_dir = self.log_path.parent / "webhook-certs"
        return [
            "--webhook", "--webhook-address=127.0.0.1", "--webhook-host=127.0.0.1",
            f"--webhook-port={self.webhook_port}", f"--webhook-cert-dir={cert_dir}",
        ]

    def _webhook_registered(self) -> bool:
        with kubernetes.config.new_client_from_config(config_file=str(self.admin_kubeconfig)) as client:
            api = kubernetes.client.AdmissionregistrationV1Api(client)
            try:
                config = api.read_validating_webhook_configuration(WEBHOOK_CONFIGURATION)
            except kubernetes.client.exceptions.ApiException as exc:
                if exc.status == 404:
                    return False
                raise
        return any(f":{self.webhook_port}/" in (hook.client_config.url or "") for hook in config.webhooks or [])

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _healthy(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"operator exited {self.proc.returncode}:\n{self.log_tail()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=2) as resp:
                return resp.status == 200
        except OSError:
            return False

    def metrics(self) -> str:
        """The operator's /metrics page (Prometheus text format)."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as resp:
            return resp.read().decode()

    def leading(self) -> bool:
        return metric(self.metrics(), "kubetrain_leader") == 1

    def reconciles(self) -> float:
        """Job reconciles this process ran, whatever their outcome (0 before the first)."""
        page = self.metrics()
        return sum(float(v) for v in re.findall(r"(?m)^kubetrain_reconcile_duration_seconds_count\{.*\} (\S+)$", page))

    def stop(self, kill: bool = False) -> None:
        if not self.running():
            return
        assert self.proc is not None
        if kill:
            self.proc.kill()
        else:
            self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def log_tail(self, size: int = 6000) -> str:
        return self.log_path.read_text(errors="replace")[-size:] if self.log_path.exists() else ""


def metric(page: str, name: str, **labels: str) -> float:
    """One sample of a Prometheus text page; fails when the series is absent."""
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    pattern = r"(?m)^" + re.escape(name) + (r"\{" + re.escape(wanted) + r"\}" if labels else "") + r" (\S+)$"
    found = re.search(pattern, page)
    assert found, f"{name}{{{wanted}}} not in /metrics"
    return float(found.group(1))
