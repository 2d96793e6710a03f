"""The Ray head launcher's own decisions: the argv split, and failing fast (with the reason in
the termination message) when `ray start --head` dies before the GCS ever answers."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest

from kubetrain_trainer import ray_head


def test_the_driver_is_everything_after_the_first_double_dash() -> None:
    assert ray_head.split_argv(["--port=1", "--", "python", "-m", "d", "--", "x"]) == (
        ["--port=1"],
        ["python", "-m", "d", "--", "x"],
    )
    for bad in (["--port=1"], ["--port=1", "--"]):
        with pytest.raises(ValueError):
            ray_head.split_argv(bad)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_head_that_fails_to_start_fails_the_pod_with_its_exit_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    report = tmp_path / "termination-log"
    monkeypatch.setattr(ray_head, "_ray_executable", lambda: "false")  # `ray start` exits 1 at once
    for name, value in {
        "KUBETRAIN_RAY_HEAD_HOST": "127.0.0.1",
        "KUBETRAIN_RAY_GCS_PORT": str(_free_port()),
        "KUBETRAIN_RAY_WORKERS": "2",
        "KUBETRAIN_TERMINATION_MESSAGE_PATH": str(report),
    }.items():
        monkeypatch.setenv(name, value)
    started = time.monotonic()
    assert ray_head.main(["--num-cpus=0", "--", "python", "driver.py"]) == 1
    assert time.monotonic() - started < 10, "no waiting on a GCS that will never come"
    written = json.loads(report.read_text())
    assert (written["outcome"], written["reason"]) == ("Failed", "TrainerError")
    assert "exited with code 1 before the driver started" in written["message"]
