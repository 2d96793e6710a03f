"""NPROC_PER_NODE > 1: the pod's entrypoint starts one trainer process per local device (as
torchrun would) and stands in for them towards the kubelet: one exit code, one final report."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType

from kubetrain_trainer import logs, termination
from kubetrain_trainer.environment import JobEnvironment

GRACE_SECONDS = 10.0


def _stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        if process.poll() is None:
            process.terminate()
    deadline = time.monotonic() + GRACE_SECONDS
    for process in processes:
        try:
            process.wait(timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def run(env: JobEnvironment) -> int:
    topology = env.topology
    logs.configure(env.namespace, env.name, topology.rank)
    with tempfile.TemporaryDirectory(prefix="kubetrain-reports-") as reports:
        processes: list[subprocess.Popen[bytes]] = []
        for local_rank in range(topology.nproc_per_node):
            child = dict(
                os.environ,
                LOCAL_RANK=str(local_rank),
                RANK=str(topology.rank + local_rank),
                KUBETRAIN_TERMINATION_MESSAGE_PATH=str(Path(reports) / str(local_rank)),
            )
            processes.append(subprocess.Popen([sys.executable, "-m", "kubetrain_trainer"], env=child))
        logs.info("local_workers_started", count=len(processes), pids=[p.pid for p in processes])

        def forward(signum: int, _frame: FrameType | None) -> None:
            for process in processes:
                if process.poll() is None:
                    process.send_signal(signum)

        signal.signal(signal.SIGTERM, forward)
        signal.signal(signal.SIGINT, forward)
        failed: tuple[int, int] | None = None  # (local rank, exit code) of the first to fail
        while failed is None and any(p.poll() is None for p in processes):
            failed = next(((i, p.returncode) for i, p in enumerate(processes) if p.returncode not in (None, 0)), None)
            time.sleep(0.2)
        failed = failed or next(((i, p.returncode) for i, p in enumerate(processes) if p.returncode), None)
        if failed is not None:
            # Peers of a failed process would wait in their next collective until it times out.
            _stop(processes)
        source = Path(reports) / str(failed[0] if failed else 0)
        report = source.read_text() if source.exists() else ""
        if failed is not None and not report:
            report = termination.report(
                "Failed", "TrainerError", f"local worker {failed[0]} exited with code {failed[1]}"
            )
        if report:
            termination.write(env.termination_message_path, report)
    code = 0 if failed is None else failed[1] if failed[1] > 0 else 1
    logs.info("exiting", exit_code=code)
    return code
