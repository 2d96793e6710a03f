"""Retry delays: doubling from the first, capped, jittered within bounds, reset by a success."""

from __future__ import annotations

from kubetrain.controller.backoff import Backoff

JOB = ("ns", "job")


def test_delays_double_up_to_the_cap_and_start_over_after_a_success() -> None:
    backoff = Backoff(5.0, 60.0)
    assert [backoff.failed(JOB) for _ in range(6)] == [5.0, 10.0, 20.0, 40.0, 60.0, 60.0]
    assert backoff.failed(("ns", "other")) == 5.0, "counted per job"
    backoff.succeeded(JOB)
    assert backoff.failed(JOB) == 5.0


def test_jitter_spreads_each_delay_within_its_fraction() -> None:
    backoff = Backoff(1.0, 300.0, jitter=0.2)
    for expected in (1.0, 2.0, 4.0, 8.0):
        assert 0.8 * expected <= backoff.failed(JOB) <= 1.2 * expected
    delays = {Backoff(10.0, 300.0, jitter=0.2).failed(JOB) for _ in range(20)}
    assert len(delays) > 1, "jobs that failed together do not retry together"


def test_a_job_refused_for_days_keeps_its_capped_delay() -> None:
    backoff = Backoff(5.0, 300.0)
    delays = [backoff.failed(JOB) for _ in range(2000)]
    assert delays[-1] == 300.0, "no overflow after thousands of failures"
