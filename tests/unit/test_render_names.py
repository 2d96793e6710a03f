"""Child names: valid DNS-1035 labels within 63 characters, deterministic, collision-free."""

from __future__ import annotations

import re

import pytest

from kubetrain.render.names import master_addr, service_name, worker_name

DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


def test_short_names_are_kept_readable() -> None:
    assert service_name("pytorch-ddp") == "pytorch-ddp"
    assert worker_name("pytorch-ddp", 0) == "pytorch-ddp-worker-0"
    assert master_addr("pytorch-ddp") == "pytorch-ddp-worker-0.pytorch-ddp"


@pytest.mark.parametrize(
    "job",
    ["a" * 63, "a" * 54, "a" * 253, "x" + "-" * 61 + "y", "job.with.dots", "1-starts-with-digit", "Upper"],
)
def test_every_name_is_a_valid_dns_label(job: str) -> None:
    names = [service_name(job)] + [worker_name(job, i) for i in (0, 9, 10, 12345)]
    for name in names:
        assert len(name) <= 63 and DNS_1035.match(name), name
    assert len(set(names)) == len(names)
    assert names[1:] == [worker_name(job, i) for i in (0, 9, 10, 12345)], "deterministic"


def test_long_names_keep_a_readable_prefix_and_the_index() -> None:
    job = "llm-finetune-with-a-really-very-long-descriptive-name-run-42"
    name = worker_name(job, 3)
    assert len(name) <= 63 and name.startswith("llm-finetune-with") and name.endswith("-worker-3")
    assert service_name(job) == job, "a job name within 63 characters is its own service name"


def test_names_that_had_to_change_do_not_collide() -> None:
    assert worker_name("a" * 60 + "x", 0) != worker_name("a" * 60 + "y", 0)
    assert service_name("a.b") != service_name("a-b")
    assert worker_name("a.b", 0) != worker_name("a-b", 0)
