"""The status reporter against a local HTTP server standing in for the API server."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from kubetrain_trainer import storage
from kubetrain_trainer.checkpoint import Checkpointer, Saved
from kubetrain_trainer.environment import JobEnvironment
from kubetrain_trainer.job import checkpoint_sink, reports_flushed
from kubetrain_trainer.status import StatusReporter
from tests.fake_api import FakeApi, fake_api
from tests.helpers import file_digest, wait_for
from tests.training import harness


@pytest.fixture
def api() -> Iterator[FakeApi]:
    with fake_api() as fake:
        yield fake


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def progress(step: int) -> dict[str, Any]:
    return {"epoch": 1, "totalEpochs": 2, "step": step, "totalSteps": 100, "trainLoss": 0.5, "percent": float(step)}


def test_server_side_apply_request_shape_and_rate_limit(api: FakeApi) -> None:
    clock = FakeClock()
    reporter = StatusReporter(api.url, "team-a", "job-1", lambda: "sekret", interval_seconds=10, clock=clock)
    sent = []
    for step, now in [(1, 1000.0), (2, 1001.0), (3, 1009.9), (4, 1010.0), (5, 1015.0), (6, 1020.5)]:
        clock.now = now
        sent.append(reporter.progress(progress(step)))
        # Let each accepted update reach the server before the next (a newer one would replace it).
        wait_for(lambda: len(api.requests) == sum(sent), timeout=5, what="the update to arrive")
    assert sent == [True, False, False, True, False, True]
    reporter.finish({"progress": progress(100), "metrics": {"accuracy": 0.9, "f1": 0.88}})

    assert [r.body["status"]["progress"]["step"] for r in api.requests] == [1, 4, 6, 100]
    first = api.requests[0]
    assert first.method == "PATCH"
    assert first.path == "/apis/kubetrain.io/v1alpha1/namespaces/team-a/trainingjobs/job-1/status"
    assert first.query == {"fieldManager": ["kubetrain-trainer"], "force": ["true"]}
    assert first.headers["Content-Type"] == "application/apply-patch+yaml"
    assert first.headers["Authorization"] == "Bearer sekret"
    assert first.body["apiVersion"] == "kubetrain.io/v1alpha1" and first.body["kind"] == "TrainingJob"
    assert first.body["metadata"] == {"name": "job-1", "namespace": "team-a"}
    assert set(first.body["status"]) == {"progress"}
    final = api.requests[-1].body["status"]
    assert final["metrics"] == {"accuracy": 0.9, "f1": 0.88} and final["progress"]["step"] == 100


def test_a_saved_checkpoint_is_sent_at_once_and_kept_in_every_later_update(api: FakeApi, tmp_path: Path) -> None:
    """The built-in trainer's checkpoints reach status.lastCheckpoint as the SDK's do; its
    progress updates, which know nothing of checkpoints, never drop it (server-side apply would)."""
    clock = FakeClock()
    reporter = StatusReporter(api.url, "team-a", "job-1", lambda: None, interval_seconds=10, clock=clock)
    model = torch.nn.Linear(3, 2)
    checkpointer = Checkpointer(f"file://{tmp_path}", on_checkpoint=checkpoint_sink(reporter))
    assert reporter.progress(progress(1))
    wait_for(lambda: len(api.requests) == 1, timeout=5, what="the first progress update")

    clock.now += 1  # within the interval: only the checkpoint may go out now
    saved: Saved = checkpointer.save(5, 0, 10, model, torch.optim.SGD(model.parameters(), lr=0.1))
    wait_for(lambda: len(api.requests) == 2, timeout=5, what="the checkpoint update")
    path = tmp_path / "checkpoints" / "step-5.pt"
    assert saved.uri == f"file://{path}" and saved.step == 5
    digest = file_digest(path)
    assert saved.digest == digest == storage.content_digest(saved.uri)
    status = api.requests[1].body["status"]
    assert status == {"progress": progress(1), "lastCheckpoint": saved.as_status()}, status

    clock.now += 10
    assert reporter.progress(progress(7))
    wait_for(lambda: len(api.requests) == 3, timeout=5, what="the next progress update")
    reporter.finish({"progress": progress(100), "metrics": {"accuracy": 0.9}})
    assert [r.body["status"]["progress"]["step"] for r in api.requests] == [1, 1, 7, 100]
    assert all(r.body["status"]["lastCheckpoint"] == saved.as_status() for r in api.requests[2:])


def test_a_loop_stopped_by_raising_gets_its_checkpoint_update_out_before_the_raise_goes_on(
    api: FakeApi, tmp_path: Path,
) -> None:
    """Stopped on SIGTERM, the loop raises right after writing its checkpoint, and the process ends
    soon after: the checkpoint's lastCheckpoint, which the job resumes from, is sent by then."""
    reporter = StatusReporter(api.url, "team-a", "job-1", lambda: None, interval_seconds=10, clock=FakeClock())
    model = torch.nn.Linear(3, 2)
    checkpointer = Checkpointer(f"file://{tmp_path}", on_checkpoint=checkpoint_sink(reporter))
    with pytest.raises(RuntimeError, match="stopped on SIGTERM"), reports_flushed(reporter):
        checkpointer.save(5, 0, 10, model, torch.optim.SGD(model.parameters(), lr=0.1))
        raise RuntimeError("stopped on SIGTERM at step 5")
    assert [r.body["status"]["lastCheckpoint"]["step"] for r in api.requests] == [5]


def test_a_restart_reports_the_checkpoint_it_resumes_from(tmp_path: Path) -> None:
    """A new attempt's first status write would drop the previous attempt's lastCheckpoint: the
    checkpoint it resumes from is reported, with the time it was written."""
    model = torch.nn.Linear(3, 2)
    saved = Checkpointer(f"file://{tmp_path}").save(8, 1, 10, model, torch.optim.SGD(model.parameters(), lr=0.1))
    heard: list[Saved] = []
    restarted = Checkpointer(f"file://{tmp_path}", on_checkpoint=heard.append)
    latest = restarted.read_latest()
    assert latest is not None
    restarted.restore(*latest, model, torch.optim.SGD(model.parameters(), lr=0.1))
    assert heard == [saved]


def test_unreachable_api_never_blocks_or_raises() -> None:
    port = harness.free_port()  # nothing listens there
    reporter = StatusReporter(f"http://127.0.0.1:{port}", "ns", "job", lambda: None, interval_seconds=0)
    began = time.monotonic()
    for step in range(50):
        reporter.progress(progress(step))
    assert time.monotonic() - began < 0.5
    reporter.finish({"progress": progress(100), "metrics": {"accuracy": 0.5}}, timeout=3)
    assert time.monotonic() - began < 5


def test_reporting_is_skipped_outside_a_cluster() -> None:
    env = JobEnvironment.from_env({"KUBETRAIN_JOB_NAME": "j", "KUBETRAIN_JOB_NAMESPACE": "ns"})
    assert StatusReporter.from_environment(env, 10) is None


def test_in_cluster_reporter_uses_the_service_account(tmp_path: Any) -> None:
    (tmp_path / "token").write_text("tok\n")
    env = JobEnvironment.from_env(
        {
            "KUBERNETES_SERVICE_HOST": "10.0.0.1",
            "KUBERNETES_SERVICE_PORT": "6443",
            "KUBETRAIN_JOB_NAME": "j",
            "KUBETRAIN_JOB_NAMESPACE": "ns",
            "KUBETRAIN_SERVICEACCOUNT_DIR": str(tmp_path),
        }
    )
    reporter = StatusReporter.from_environment(env, 10)
    assert reporter is not None
    assert reporter.url == "https://10.0.0.1:6443/apis/kubetrain.io/v1alpha1/namespaces/ns/trainingjobs/j/status?fieldManager=kubetrain-trainer&force=true"
