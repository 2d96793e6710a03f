"""Leader election's decisions (pure) and its configuration; the campaign itself runs against the
real API server in tests/integration/test_high_availability.py."""

from __future__ import annotations

import datetime as dt

import pydantic
import pytest

from kubetrain.controller.config import LeaderElectionConfig
from kubetrain.controller.leadership import Step, held_spec, micro_time, next_step, released_spec

NOW = dt.datetime(2026, 12, 2, 5, 0, 0, 123456, tzinfo=dt.timezone.utc)
HELD_BY_B = {"holderIdentity": "b", "leaseDurationSeconds": 15, "leaseTransitions": 3,
             "acquireTime": "2026-12-02T04:00:00.000000Z", "renewTime": "2026-12-02T04:59:58.000000Z"}


@pytest.mark.parametrize(
    ("spec", "unchanged_for", "expected"),
    [
        (None, 0.0, Step.CREATE),
        ({**HELD_BY_B, "holderIdentity": "a"}, 100.0, Step.RENEW),
        ({**HELD_BY_B, "holderIdentity": "a"}, 0.0, Step.RENEW),
        (HELD_BY_B, 0.0, Step.FOLLOW),
        (HELD_BY_B, 14.9, Step.FOLLOW),
        (HELD_BY_B, 15.0, Step.ACQUIRE),
        ({**HELD_BY_B, "leaseDurationSeconds": 40}, 20.0, Step.FOLLOW),  # the holder's duration counts
        ({**HELD_BY_B, "leaseDurationSeconds": None}, 15.0, Step.ACQUIRE),  # none written: ours
        ({**HELD_BY_B, "holderIdentity": ""}, 0.0, Step.ACQUIRE),  # released
        ({k: v for k, v in HELD_BY_B.items() if k != "holderIdentity"}, 0.0, Step.ACQUIRE),
    ],
    ids=["none", "ours-late", "ours", "fresh", "almost-expired", "expired", "longer-duration", "no-duration",
         "released", "no-holder"],
)
def test_next_step(spec: dict[str, object] | None, unchanged_for: float, expected: Step) -> None:
    assert next_step(spec, "a", unchanged_for, 15.0) is expected


def test_acquiring_counts_a_transition_and_renewing_keeps_the_acquire_time() -> None:
    acquired = held_spec(Step.ACQUIRE, HELD_BY_B, "a", 15.0, NOW)
    assert acquired == {"holderIdentity": "a", "leaseDurationSeconds": 15, "acquireTime": "2026-12-02T05:00:00.123456Z",
                        "renewTime": "2026-12-02T05:00:00.123456Z", "leaseTransitions": 4}
    later = NOW + dt.timedelta(seconds=2)
    renewed = held_spec(Step.RENEW, acquired, "a", 15.0, later)
    assert renewed == {**acquired, "renewTime": "2026-12-02T05:00:02.123456Z"}
    created = held_spec(Step.CREATE, None, "a", 15.0, NOW)
    assert created["leaseTransitions"] == 0 and created["holderIdentity"] == "a"


def test_a_released_lease_has_no_holder_and_is_acquired_at_once() -> None:
    released = released_spec({**HELD_BY_B, "holderIdentity": "a"}, NOW)
    assert "holderIdentity" not in released
    assert released["leaseTransitions"] == 3 and released["leaseDurationSeconds"] == 1
    assert next_step(released, "b", 0.0, 15.0) is Step.ACQUIRE


def test_micro_time_is_utc_with_microseconds() -> None:
    local = NOW.astimezone(dt.timezone(dt.timedelta(hours=2)))
    assert micro_time(local) == "2026-12-02T05:00:00.123456Z"


def test_timings_must_let_a_leader_stop_before_a_standby_takes_over() -> None:
    config = LeaderElectionConfig(namespace="kubetrain", identity="pod-a")
    assert (config.lease_duration_seconds, config.renew_deadline_seconds, config.retry_period_seconds) == (15, 10, 2)
    with pytest.raises(pydantic.ValidationError, match="retryPeriod < renewDeadline < leaseDuration, got 2s, 20s, 15s"):
        LeaderElectionConfig(namespace="kubetrain", identity="pod-a", renew_deadline_seconds=20)
    with pytest.raises(pydantic.ValidationError, match="got 12s, 10s, 15s"):
        LeaderElectionConfig(namespace="kubetrain", identity="pod-a", retry_period_seconds=12)
