"""The local node's agent: registers the Node, keeps it Ready, and runs the pods the scheduler
binds to it as local processes (see the package docstring for the limits)."""

from __future__ import annotations

import datetime as dt
import importlib.util
import logging
import os
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kubernetes
from kubernetes.client.exceptions import ApiException

from kubetrain.devcluster.localnode.launch import LaunchError, describe, plan_launch
from kubetrain.devcluster.localnode.podstatus import (
    launch_failed_status,
    rfc3339,
    running_status,
    terminated_status,
    termination_message,
)
from kubetrain.devcluster.nodepools import POOL_LABEL, REGION_LABEL, ZONE_LABEL

log = logging.getLogger("kubetrain.localnode")

LOCAL_TAINT = {"key": "kubetrain.io/local", "value": "true", "effect": "NoSchedule"}
HEARTBEAT_SECONDS = 10
LEASE_SECONDS = 40
LOG_TAIL_BYTES = 4096


def _image_env() -> dict[str, str]:
    """What stands in for the image's own env: this machine's PATH, and the agent's PYTHONPATH,
    so pods run the trainer of the checkout the cluster was started from."""
    return {name: os.environ[name] for name in ("PATH", "PYTHONPATH") if name in os.environ}


def _has_ray_client() -> bool:
    """Ray Client needs grpcio (`ray[client]`); the agent's environment, which pods run in, may
    have only `ray[train]`. Ray checks the same import before it starts a client server."""
    return importlib.util.find_spec("grpc") is not None


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


@dataclass
class _Running:
    """A pod's live process and what is needed to report on it."""

    pod: dict[str, Any]
    proc: subprocess.Popen[bytes]
    started: dt.datetime
    pod_dir: Path
    policy: str
    termination_path: Path
    deleting: bool = False


class LocalNodeAgent:
    def __init__(
        self,
        api: kubernetes.client.ApiClient,
        node_name: str,
        state_dir: Path,
        api_port: int,
        ca_file: Path,
        region: str = "eu-west-1",
        cpu: str = "16",
        memory: str = "64Gi",
    ) -> None:
        self.core = kubernetes.client.CoreV1Api(api)
        self.coordination = kubernetes.client.CoordinationV1Api(api)
        self.api = api
        self.node_name = node_name
        self.state_dir = state_dir
        self.api_port = api_port
        self.ca_file = ca_file
        self.region = region
        self.capacity = {"cpu": cpu, "memory": memory, "pods": "110"}
        self._running: dict[str, _Running] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()

    # -- node ----------------------------------------------------------------------------------
    def register(self) -> None:
        node = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": self.node_name,
                "labels": {
                    "kubernetes.io/hostname": self.node_name,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                    POOL_LABEL: "local",
                    REGION_LABEL: self.region,
                    ZONE_LABEL: f"{self.region}a",
                },
            },
            "spec": {"taints": [LOCAL_TAINT]},
        }
        try:
            self.core.create_node(node)
        except ApiException as exc:
            if exc.status != 409:
                raise
        self._report_node_status()
        self._renew_lease()

    def _report_node_status(self) -> None:
        now = rfc3339(_utcnow())
        conditions = [
            {"type": t, "status": "False", "reason": f"KubeletHas{r}", "message": m,
             "lastHeartbeatTime": now, "lastTransitionTime": now}
            for t, r, m in (
                ("MemoryPressure", "SufficientMemory", "local node agent"),
                ("DiskPressure", "NoDiskPressure", "local node agent"),
                ("PIDPressure", "SufficientPID", "local node agent"),
            )
        ]
        conditions.append({"type": "Ready", "status": "True", "reason": "KubeletReady",
                           "message": "local node agent is running pods as processes",
                           "lastHeartbeatTime": now, "lastTransitionTime": now})
        self.core.patch_node_status(
            self.node_name,
            {"status": {
                "capacity": self.capacity,
                "allocatable": self.capacity,
                "conditions": conditions,
                "addresses": [{"type": "InternalIP", "address": "127.0.0.1"},
                              {"type": "Hostname", "address": self.node_name}],
                "nodeInfo": {"architecture": "amd64", "operatingSystem": "linux",
                             "kubeletVersion": "kubetrain-localnode", "kubeProxyVersion": "",
                             "containerRuntimeVersion": "process://local", "kernelVersion": os.uname().release,
                             "osImage": "", "bootID": "", "machineID": "", "systemUUID": ""},
            }},
        )

    def _renew_lease(self) -> None:
        now = _utcnow().strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        body = {
            "metadata": {"name": self.node_name, "namespace": "kube-node-lease"},
            "spec": {"holderIdentity": self.node_name, "leaseDurationSeconds": LEASE_SECONDS, "renewTime": now},
        }
        try:
            self.coordination.patch_namespaced_lease(self.node_name, "kube-node-lease", body)
        except ApiException as exc:
            if exc.status != 404:
                raise
            self.coordination.create_namespaced_lease("kube-node-lease", body)

    def _heartbeat(self) -> None:
        while not self._stop.wait(HEARTBEAT_SECONDS):
            try:
                self._renew_lease()
                self._report_node_status()
            except (ApiException, OSError) as exc:
                log.warning("heartbeat failed: %s", exc)

    # -- pods ----------------------------------------------------------------------------------
    def run(self) -> None:
        """Watches this node's pods until stop(); every event is handled idempotently."""
        self.register()
        threading.Thread(target=self._heartbeat, daemon=True, name="heartbeat").start()
        selector = f"spec.nodeName={self.node_name}"
        first = True
        while not self._stop.is_set():
            try:
                listing = self.core.list_pod_for_all_namespaces(field_selector=selector)
                for item in listing.items:
                    pod = self.api.sanitize_for_serialization(item)
                    if first:
                        self._fail_orphan(pod)
                    self._handle(pod)
                first = False
                watch = kubernetes.watch.Watch()
                for event in watch.stream(
                    self.core.list_pod_for_all_namespaces,
                    field_selector=selector,
                    resource_version=listing.metadata.resource_version,
                    timeout_seconds=60,
                    _request_timeout=90,
                ):
                    if self._stop.is_set():
                        watch.stop()
                        break
                    if event["type"] in ("ADDED", "MODIFIED"):
                        self._handle(self.api.sanitize_for_serialization(event["object"]))
            except (ApiException, OSError) as exc:
                log.warning("pod watch interrupted: %s; relisting", exc)
                time.sleep(1)

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            procs = list(self._running.values())
        for running in procs:
            self._kill(running.proc, 5)

    def _fail_orphan(self, pod: dict[str, Any]) -> None:
        """A pod Running on this node before the agent started has lost its process."""
        if pod.get("status", {}).get("phase") == "Running" and not pod["metadata"].get("deletionTimestamp"):
            now = _utcnow()
            status = launch_failed_status(pod, now, "the local node agent restarted and the pod's process was lost")
            self._patch_status(pod, status)

    def _handle(self, pod: dict[str, Any]) -> None:
        uid = pod["metadata"]["uid"]
        if pod["metadata"].get("deletionTimestamp"):
            self._delete(pod)
            return
        with self._lock:
            known = uid in self._running
        phase = pod.get("status", {}).get("phase", "Pending")
        if known or phase in ("Succeeded", "Failed", "Running"):
            return
        self._start(pod)

    def _pod_dir(self, pod: dict[str, Any]) -> Path:
        meta = pod["metadata"]
        return self.state_dir / "pods" / f"{meta['namespace']}_{meta['name']}_{meta['uid']}"

    def _service_account_dir(self, pod: dict[str, Any], pod_dir: Path) -> Path | None:
        """Mints a pod-bound token as the kubelet does for the projected token volume."""
        if pod["spec"].get("automountServiceAccountToken") is False:
            return None
        meta = pod["metadata"]
        sa = pod["spec"].get("serviceAccountName") or "default"
        try:
            token = self.core.create_namespaced_service_account_token(
                sa,
                meta["namespace"],
                {
                    "spec": {
                        "expirationSeconds": 3600,
                        "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": meta["name"], "uid": meta["uid"]},
                    }
                },
            )
        except ApiException as exc:
            log.warning("no token for %s/%s: %s", meta["namespace"], sa, exc.reason)
            return None
        sa_dir = pod_dir / "serviceaccount"
        sa_dir.mkdir(parents=True, exist_ok=True)
        (sa_dir / "token").write_text(token.status.token)
        (sa_dir / "namespace").write_text(meta["namespace"])
        shutil.copyfile(self.ca_file, sa_dir / "ca.crt")
        return sa_dir

    def _start(self, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        name = f"{meta['namespace']}/{meta['name']}"
        pod_dir = self._pod_dir(pod)
        pod_dir.mkdir(parents=True, exist_ok=True)
        now = _utcnow()
        try:
            launch = plan_launch(
                pod, pod_dir, "127.0.0.1", self.api_port, self._service_account_dir(pod, pod_dir), _has_ray_client()
            )
        except LaunchError as exc:
            log.warning("pod %s cannot run here: %s", name, exc)
            self._patch_status(pod, launch_failed_status(pod, now, str(exc)))
            return
        log.info("starting pod %s: %s", name, describe(launch))
        out = (pod_dir / "output.log").open("ab")
        try:
            proc = subprocess.Popen(
                launch.argv, cwd=launch.cwd, env={**_image_env(), **launch.env},
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )
        except OSError as exc:
            self._patch_status(pod, launch_failed_status(pod, now, f"cannot start {describe(launch)}: {exc}"))
            return
        finally:
            out.close()
        running = _Running(pod, proc, now, pod_dir, launch.termination_message_policy, launch.termination_message_path)
        with self._lock:
            self._running[meta["uid"]] = running
        self._patch_status(pod, running_status(pod, now))
        threading.Thread(target=self._await_exit, args=(running,), daemon=True, name=f"pod-{meta['name']}").start()

    def _await_exit(self, running: _Running) -> None:
        code = running.proc.wait()
        pod = running.pod
        with self._lock:
            self._running.pop(pod["metadata"]["uid"], None)
        if running.deleting:
            return
        exit_code = code if code >= 0 else 128 - code
        written = running.termination_path.read_text(errors="replace") if running.termination_path.exists() else None
        log_file = running.pod_dir / "output.log"
        tail = log_file.read_bytes()[-LOG_TAIL_BYTES:].decode(errors="replace") if log_file.exists() else ""
        message = termination_message(written, tail, running.policy, exit_code)
        log.info("pod %s/%s exited with %d", pod["metadata"]["namespace"], pod["metadata"]["name"], exit_code)
        self._patch_status(pod, terminated_status(pod, running.started, _utcnow(), exit_code, message))

    def _delete(self, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        with self._lock:
            running = self._running.get(meta["uid"])
        if running is not None:
            running.deleting = True
            grace = min(int(pod["spec"].get("terminationGracePeriodSeconds") or 30), 10)
            self._kill(running.proc, grace)
        try:
            self.core.delete_namespaced_pod(
                meta["name"], meta["namespace"], grace_period_seconds=0,
                body={"preconditions": {"uid": meta["uid"]}, "gracePeriodSeconds": 0},
            )
        except ApiException as exc:
            if exc.status not in (404, 409):
                raise

    @staticmethod
    def _kill(proc: subprocess.Popen[bytes], grace: float) -> None:
        if proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        except ProcessLookupError:
            pass

    def _patch_status(self, pod: dict[str, Any], status: dict[str, Any]) -> None:
        meta = pod["metadata"]
        try:
            self.core.patch_namespaced_pod_status(meta["name"], meta["namespace"], {"status": status})
        except ApiException as exc:
            if exc.status != 404:
                log.warning("status of %s/%s not reported: %s", meta["namespace"], meta["name"], exc.reason)
