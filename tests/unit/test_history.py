"""The metric history and archived logs of docs/history-and-curves.md, both sides: what the trainer
(and the SDK in users' code) writes into the output location, what the operator's client parses
back, the curves drawn from it, and the archived logs merged across ranks."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from kubetrain.api.history import MetricRecord, log_rank, parse_history
from kubetrain.cli import curve
from kubetrain.client import archive
from kubetrain.client.logs import LogLine, merge_archived
from kubetrain_trainer import curves as trainer_curves
from kubetrain_trainer import history as trainer_history
from kubetrain_trainer import logs as trainer_logs
from kubetrain_trainer.sdk.run import start

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def trainer_logger() -> Iterator[None]:
    """The trainer's logger as it was: these tests configure it (a process-wide logger)."""
    logger = logging.getLogger("kubetrain_trainer")
    handlers = list(logger.handlers)
    yield
    logger.handlers[:] = handlers


def line(step: int, phase: str, epoch: int | None = None, **metrics: float) -> str:
    record = {"step": step, "epoch": epoch, "phase": phase, "metrics": metrics, "time": "2026-12-02T12:00:00Z"}
    return json.dumps(record)


def test_the_operator_parses_what_the_trainer_writes(tmp_path: Path) -> None:
    written = trainer_history.History(f"file://{tmp_path}")
    written.record(5, "train", {"loss": 0.5, "diverged": float("nan"), "note": "text", "flag": True}, epoch=1)
    written.record(5, "validation", {"loss": float("inf")})  # nothing finite: no line
    written.record(10, "validation", {"loss": 0.4, "accuracy": 0.8}, epoch=1)
    records = parse_history((tmp_path / "metrics.jsonl").read_text())
    assert [(r.step, r.epoch, r.phase, r.metrics) for r in records] == [
        (5, 1, "train", {"loss": 0.5}), (10, 1, "validation", {"loss": 0.4, "accuracy": 0.8}),
    ]
    section = written.close()
    assert section["metrics"]["path"] == "metrics.jsonl" and section["curves"]["path"] == "curves.png"
    assert (tmp_path / "curves.png").read_bytes().startswith(PNG_SIGNATURE)


def test_parsing_skips_blank_and_unfinished_lines_ignores_new_fields_and_refuses_a_bad_record() -> None:
    newer = json.dumps({**json.loads(line(3, "train", loss=1.0)), "host": "node-0"})
    being_written = line(4, "train", loss=0.9)[:20]
    assert parse_history(f"{newer}\n\n{being_written}") == [
        MetricRecord(step=3, epoch=None, phase="train", metrics={"loss": 1.0}, time="2026-12-02T12:00:00Z")
    ]
    with pytest.raises(ValidationError, match="phase"):
        parse_history(line(3, "warmup", loss=1.0) + "\n")


@pytest.mark.parametrize(("name", "rank"), [("rank-0.log", 0), ("rank-12.log", 12), ("rank-x.log", None),
                                            ("rank-1.txt", None), (".rank-1.log.tmp", None)])
def test_log_rank(name: str, rank: int | None) -> None:
    assert log_rank(name) == rank


# The operator's and the trainer's series (they share no code: an import contract) agree.
SERIES: list[Callable[[list[Any]], dict[str, dict[str, list[tuple[int, float]]]]]] = [
    lambda lines: curve.series(parse_history("".join(f"{text}\n" for text in lines))),
    lambda lines: trainer_curves.series(trainer_history.parse("".join(f"{text}\n" for text in lines))),
]


@pytest.mark.parametrize("series", SERIES, ids=["operator", "trainer"])
def test_series_keep_the_last_record_of_a_step_and_leave_out_test_only_metrics(series: Callable[..., Any]) -> None:
    lines = [
        line(10, "validation", 1, loss=0.6), line(5, "train", 1, loss=0.9), line(10, "train", 1, loss=0.7),
        # A second attempt resumed from step 5 and recorded step 10 again.
        line(10, "train", 1, loss=0.65),
        line(10, "test", 1, loss=0.62, f1=0.8),
    ]
    assert series(lines) == {
        "loss": {"train": [(5, 0.9), (10, 0.65)], "validation": [(10, 0.6)], "test": [(10, 0.62)]},
    }


def test_step_interval_keeps_about_two_hundred_train_points() -> None:
    assert [trainer_history.step_interval(total) for total in (1, 200, 201, 10_000)] == [1, 1, 2, 50]


def test_a_chart_puts_each_phase_on_the_grid_with_its_ranges() -> None:
    phases = {"train": [(0, 1.0), (10, 0.5)], "validation": [(10, 0.6)]}
    assert curve.chart("loss", phases, width=11, height=3) == [
        "loss: * train 0.5 at step 10, o validation 0.6 at step 10",
        "         1 |*",
        "           |",
        "       0.5 |          o",
        "           +-----------",
        "            step 0   10",
    ]


def test_charts_are_drawn_for_every_metric() -> None:
    curves = curve.series(parse_history(f"{line(1, 'train', loss=1.0)}\n{line(2, 'validation', accuracy=0.5)}\n"))
    lines = curve.charts(curves)
    assert lines[0].startswith("accuracy: o validation 0.5 at step 2") and "" in lines
    assert lines[lines.index("") + 1].startswith("loss: * train 1 at step 1")


def test_the_png_is_drawn_by_the_trainers_command(tmp_path: Path) -> None:
    history = tmp_path / "metrics.jsonl"
    history.write_text(f"{line(1, 'train', loss=1.0)}\n{line(2, 'validation', accuracy=0.5)}\n")
    argv = curve.png_argv(history, tmp_path / "all.png", None)
    assert argv[1:3] == ["-m", "kubetrain_trainer.curves"]
    assert trainer_curves.main(argv[3:]) == 0
    assert (tmp_path / "all.png").read_bytes().startswith(PNG_SIGNATURE)
    assert trainer_curves.main(curve.png_argv(history, tmp_path / "loss.png", "loss")[3:]) == 0
    assert trainer_curves.main(curve.png_argv(history, tmp_path / "none.png", "f1")[3:]) == 1
    assert not (tmp_path / "none.png").exists()


def test_archived_logs_merge_in_time_order_and_keep_each_ranks_order() -> None:
    def log(ts: str, event: str) -> str:
        return json.dumps({"ts": f"2026-12-02T12:00:{ts}Z", "event": event})

    merged = merge_archived({
        1: "\n".join([log("01.000", "b"), "Traceback (not JSON)", log("03.000", "d")]),
        0: "\n".join([log("00.500", "a"), log("02.000", "c")]),
    })
    assert merged[2] == LogLine("rank 1", "Traceback (not JSON)")
    assert [(seen.source, seen.text.split('"event": ')[-1]) for seen in merged] == [
        ("rank 0", '"a"}'), ("rank 1", '"b"}'), ("rank 1", "Traceback (not JSON)"), ("rank 0", '"c"}'),
        ("rank 1", '"d"}'),
    ]


def test_the_sdk_keeps_the_history_and_archives_its_log_lines(tmp_path: Path) -> None:
    output = tmp_path / "output"
    run = start({
        "KUBETRAIN_JOB_NAME": "churn", "KUBETRAIN_JOB_NAMESPACE": "team-a",
        "KUBETRAIN_OUTPUT_URI": f"file://{output}",
        "KUBETRAIN_TERMINATION_MESSAGE_PATH": str(tmp_path / "termination-log"),
    })
    run.progress(1, total_steps=2, epoch=1, loss=0.9, metrics={"lr": 0.1})
    run.log_metrics({"eval_loss": 0.8})
    run.progress(2, total_steps=2, epoch=1, loss=0.7)
    weights = output / "model.pt"
    weights.write_bytes(b"weights")
    run.export_model(f"file://{weights}")
    run.finish({"eval_loss": 0.75})

    records = parse_history((output / "metrics.jsonl").read_text())
    assert [(r.step, r.phase, r.metrics) for r in records] == [
        (1, "train", {"loss": 0.9, "lr": 0.1}), (1, "validation", {"eval_loss": 0.8}), (2, "train", {"loss": 0.7}),
        (2, "test", {"eval_loss": 0.75}),
    ]
    assert (output / "curves.png").read_bytes().startswith(PNG_SIGNATURE)
    card = json.loads((output / "model-card.json").read_text())
    assert set(card["history"]) == {"metrics", "curves", "logs"}
    events = [json.loads(text)["event"] for text in (output / "logs" / "rank-0.log").read_text().splitlines()]
    assert events[-3:] == ["exported", "history_written", "finished"]


def test_the_client_reads_local_outputs_and_says_why_it_cannot_read_others(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    for name in ("rank-10.log", "rank-2.log", "rank-0.log", "notes.txt"):
        (logs / name).write_text(name)
    found = archive.log_files(f"file://{tmp_path}/")
    assert found == {rank: f"file://{tmp_path}/logs/rank-{rank}.log" for rank in (0, 2, 10)}
    assert list(found) == [0, 2, 10]
    assert archive.read_bytes(found[2]) == b"rank-2.log"
    assert archive.log_files(f"file://{tmp_path}/elsewhere") == {}
    with pytest.raises(archive.ArchiveUnreadable, match="does not exist"):
        archive.read_bytes(f"file://{tmp_path}/metrics.jsonl")
    with pytest.raises(archive.ArchiveUnreadable, match="PersistentVolumeClaim is mounted in the job's pods"):
        archive.read_bytes("pvc://models/fraud/metrics.jsonl")


def test_an_object_store_gets_the_history_and_logs_when_closed_and_the_client_reads_them_back() -> None:
    # fsspec's in-memory store stands in for s3:// or gs://: the same code paths, no network.
    output = "memory://history-test/run"
    trainer_logs.configure("team-a", "churn", 3)
    trainer_logs.archive(output, 3)
    trainer_logs.info("training_started", step=0)
    written = trainer_history.History(output)
    written.record(2, "train", {"loss": 0.9}, epoch=1)
    written.record(2, "validation", {"loss": 0.8}, epoch=1)
    assert not archive.log_files(output), "an object store gets the log file on close only"
    section = written.close()
    trainer_logs.close_archive()

    assert [r.metrics for r in parse_history(archive.read_bytes(f"{output}/metrics.jsonl").decode())] == [
        {"loss": 0.9}, {"loss": 0.8},
    ]
    assert archive.read_bytes(section["curves"]["uri"]).startswith(PNG_SIGNATURE)
    assert list(archive.log_files(output)) == [3]
    events = [json.loads(text)["event"] for text in archive.read_bytes(f"{output}/logs/rank-3.log").splitlines()]
    assert events == ["training_started", "history_written"]


def test_an_output_the_log_archive_cannot_be_written_to_is_said_and_the_run_goes_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    trainer_logs.configure("team-a", "churn", 0)
    trainer_logs.archive(f"file://{blocker}/output", 0)
    trainer_logs.info("still_logged")
    trainer_logs.close_archive()
    events = [json.loads(text)["event"] for text in capsys.readouterr().err.splitlines()]
    assert events == ["log_archive_unavailable", "still_logged"]
