"""The Ray head pod's entrypoint: `python -m kubetrain_trainer.ray_head <ray start flags> -- <driver>`.

It keeps `ray start --head --block` running as a child, waits until the GCS answers and every Ray
worker pod has joined (KUBETRAIN_RAY_WORKERS), then runs the driver and exits with the driver's
code. The pod's phase is therefore the driver's outcome, which is what the operator follows; a
head whose Ray processes die first fails the pod, which restarts the whole group.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from types import FrameType

from kubetrain_trainer import logs, termination
from kubetrain_trainer.environment import DEFAULT_TERMINATION_MESSAGE_PATH, int_var

POLL_SECONDS = 1.0
STOP_GRACE_SECONDS = 15.0


def split_argv(argv: list[str]) -> tuple[list[str], list[str]]:
    """(ray start flags, driver argv); the driver is everything after the first `--`."""
    if "--" not in argv or argv.index("--") == len(argv) - 1:
        raise ValueError("usage: python -m kubetrain_trainer.ray_head [ray start flags] -- DRIVER [ARGS]")
    cut = argv.index("--")
    return argv[:cut], argv[cut + 1 :]


def _ray_executable() -> str:
    """The `ray` of this Python's environment, else the one on PATH."""
    sibling = os.path.join(os.path.dirname(sys.executable), "ray")
    return sibling if os.access(sibling, os.X_OK) else shutil.which("ray") or "ray"


def _with_this_python(argv: list[str]) -> list[str]:
    """A driver that names `python` runs with the launcher's interpreter, as the image's would."""
    return [sys.executable, *argv[1:]] if argv[0] in ("python", "python3") else argv


def _gcs_listening(host: str, port: int) -> bool:
    """A plain TCP probe: ray.init retries an absent GCS for minutes, and meanwhile the launcher
    could not notice that `ray start --head` has already failed."""
    try:
        with socket.create_connection((host, port), timeout=POLL_SECONDS):
            return True
    except OSError:
        return False


def _alive_workers(host: str, port: int) -> int | None:
    """Ray nodes besides the head that are alive, or None while the GCS does not answer."""
    import ray  # only the launcher's short-lived status check needs it

    if not _gcs_listening(host, port):
        return None
    try:
        ray.init(address=f"{host}:{port}", logging_level=logging.ERROR, log_to_driver=False)
    except ConnectionError:
        return None
    try:
        return sum(1 for node in ray.nodes() if node["Alive"]) - 1
    finally:
        ray.shutdown()


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the process group (ray start stops its GCS, raylet and dashboard), then SIGKILL."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=STOP_GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def _fail(path: str, message: str) -> int:
    logs.error("failed", reason="TrainerError", message=message)
    termination.write(path, termination.report("Failed", "TrainerError", message))
    return 1


def main(argv: list[str] | None = None) -> int:
    env = os.environ
    logs.configure(env.get("KUBETRAIN_JOB_NAMESPACE", "default"), env.get("KUBETRAIN_JOB_NAME", "local"), -1)
    report_path = env.get("KUBETRAIN_TERMINATION_MESSAGE_PATH", DEFAULT_TERMINATION_MESSAGE_PATH)
    flags, driver = split_argv(sys.argv[1:] if argv is None else argv)
    host, port = env.get("KUBETRAIN_RAY_HEAD_HOST", "127.0.0.1"), int_var(env, "KUBETRAIN_RAY_GCS_PORT", 6379)
    expected = int_var(env, "KUBETRAIN_RAY_WORKERS", 0)
    head = subprocess.Popen([_ray_executable(), "start", "--head", "--block", *flags], start_new_session=True)
    children = [head]

    def forward(signum: int, _frame: FrameType | None) -> None:
        for child in children[1:]:
            child.send_signal(signum)
        _stop(head)
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, forward)
    try:
        while (joined := _alive_workers(host, port)) is None or joined < expected:
            if head.poll() is not None:
                return _fail(report_path, f"the Ray head exited with code {head.returncode} before the driver started")
            time.sleep(POLL_SECONDS)
        logs.info("ray_cluster_ready", workers=joined, driver=driver)
        children.append(subprocess.Popen(_with_this_python(driver)))
        while (code := children[1].poll()) is None:
            if head.poll() is not None:
                children[1].terminate()
                children[1].wait()
                return _fail(report_path, f"the Ray head processes exited with code {head.returncode} during the run")
            time.sleep(POLL_SECONDS)
    finally:
        _stop(head)
    if code != 0 and not (os.path.exists(report_path) and os.path.getsize(report_path)):
        return _fail(report_path, f"the Ray driver {' '.join(driver)} exited with code {code}")
    logs.info("exiting", exit_code=code)
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    raise SystemExit(main())
