"""Memory of the operator's cache per job: the bytes a ClusterCache holds for each job (its
TrainingJob, its pods and its Service) against the same objects kept whole. The cache holds every
job, pod and Service of the operator's scope for as long as they exist, so this is most of what
the operator's memory grows by per job.

The objects in bench/objects/ are as the API server returned them during bench/scale.py (a worker
pod that KWOK runs, its job's headless Service, the TrainingJob; `kubectl get -o json`, which
leaves out managedFields, as the cache does). Sizes are tracemalloc's: Python's own allocations,
without the allocator's slack that RSS also counts.

    .venv/bin/python bench/cache_memory.py [--jobs 1000] [--workers 4]

Not a test: it prints a table.
"""

from __future__ import annotations

import argparse
import gc
import json
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kubetrain.controller.cache import ClusterCache

OBJECTS = Path(__file__).parent / "objects"


def renamed(body: dict[str, Any], job: str, name: str) -> str:
    """`body` as the object `name` of job `job`, in JSON."""
    copied: dict[str, Any] = json.loads(json.dumps(body).replace("job-00001", job))
    copied["metadata"]["name"] = name
    copied["metadata"]["uid"] = f"uid-{name}"
    return json.dumps(copied)


def decoded(texts: list[str]) -> list[dict[str, Any]]:
    """Each object decoded on its own, as each watch event is: no string is shared between them."""
    return [json.loads(text) for text in texts]


def held(build: Callable[[], object]) -> int:
    """Bytes still allocated after `build()`, while its result is alive."""
    gc.collect()
    tracemalloc.start()
    kept = build()
    gc.collect()
    size, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del kept
    return size


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=4)
    args = parser.parse_args()
    pod, service, job = (
        json.loads((OBJECTS / f"{kind}.json").read_text())
        for kind in ("pod", "service", "trainingjob")
    )
    names = [f"job-{index:05d}" for index in range(args.jobs)]
    pods = [renamed(pod, name, f"{name}-worker-{worker}") for name in names for worker in range(args.workers)]
    services = [renamed(service, name, name) for name in names]
    jobs = [renamed(job, name, name) for name in names]

    def cached_children(kind: str, items: list[str]) -> Callable[[], object]:
        def build() -> ClusterCache:
            cache = ClusterCache(kube=None)  # type: ignore[arg-type]  # listings feed it; it reads nothing
            cache.listing_started(kind, None)
            cache.listed(kind, None, decoded(items))
            return cache
        return build

    def cached_jobs() -> ClusterCache:
        cache = ClusterCache(kube=None)  # type: ignore[arg-type]
        for body in decoded(jobs):
            cache.job_event("ADDED", body)
        return cache

    rows = [
        (f"pods ({args.workers})", held(lambda: decoded(pods)), held(cached_children("Pod", pods))),
        ("Service", held(lambda: decoded(services)), held(cached_children("Service", services))),
        ("TrainingJob", held(lambda: decoded(jobs)), held(cached_jobs)),
    ]
    print(f"{args.jobs} jobs of {args.workers} workers; KiB per job")
    print(f"{'objects':<14} {'whole':>8} {'cached':>8}")
    for what, whole, cached in rows:
        print(f"{what:<14} {whole / args.jobs / 1024:8.1f} {cached / args.jobs / 1024:8.1f}")
    whole_total, cached_total = sum(r[1] for r in rows), sum(r[2] for r in rows)
    print(f"{'per job':<14} {whole_total / args.jobs / 1024:8.1f} {cached_total / args.jobs / 1024:8.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
