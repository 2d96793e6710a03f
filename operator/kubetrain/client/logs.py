"""The output of a job's pods through the API server's pods/log (as `kubectl logs`), one stream
per worker merged into one, each line tagged with the rank it came from.

The worker's replica index (its `kubetrain.io/replica-index` label) is the rank users see in the
trainer's own output (node rank with nprocPerNode > 1); a Ray head is `head`.
"""

from __future__ import annotations

import heapq
import json
import queue
import threading
from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple

import kubernetes
import urllib3
from kubernetes.client.exceptions import ApiException

from kubetrain.api.contract import ATTEMPT_LABEL, HEAD_ROLE, JOB_NAME_LABEL, REPLICA_INDEX_LABEL, ROLE_LABEL
from kubetrain.api.contract import TRAINER_CONTAINER as CONTAINER
from kubetrain.api.job import TrainingJob

# How often a followed pod whose container has not started yet is asked again.
RETRY_SECONDS = 1.0


class LogLine(NamedTuple):
    source: str
    text: str


class ArchivedLogs(NamedTuple):
    """Archived lines (merge_archived) and the folder they were read from."""

    location: str
    lines: list[LogLine]


def source_of(labels: dict[str, str]) -> str:
    """`rank N` for a worker, `head` for a Ray head."""
    if labels.get(ROLE_LABEL) == HEAD_ROLE:
        return HEAD_ROLE
    return f"rank {labels.get(REPLICA_INDEX_LABEL, '?')}"


def merge_timestamped(streams: dict[str, str]) -> list[LogLine]:
    """One list of lines in time order from each source's `timestamps=true` output (RFC 3339 with
    nanoseconds, so the strings sort as times); lines of one source keep their order."""
    def lines(source: str, text: str) -> Iterable[tuple[str, int, LogLine]]:
        for number, line in enumerate(text.splitlines()):
            stamp, _, rest = line.partition(" ")
            yield stamp, number, LogLine(source, rest)

    ordered = heapq.merge(*(lines(source, text) for source, text in sorted(streams.items())))
    return [line for _, _, line in ordered]


def merge_archived(texts: dict[int, str]) -> list[LogLine]:
    """One list of lines in time order from each rank's archived log (the trainer's JSON lines,
    whose `ts` is RFC 3339 with milliseconds, so the strings sort as times); lines of one rank
    keep their order, and a line that is not JSON sorts as if logged with the one before it."""
    def lines(rank: int, text: str) -> Iterable[tuple[str, int, LogLine]]:
        stamp = ""
        for number, line in enumerate(text.splitlines()):
            try:
                stamp = str(json.loads(line).get("ts", stamp))
            except (ValueError, AttributeError):
                pass
            yield stamp, number, LogLine(f"rank {rank}", line)

    ordered = heapq.merge(*(lines(rank, text) for rank, text in sorted(texts.items())))
    return [line for _, _, line in ordered]


def job_pods(core: kubernetes.client.CoreV1Api, job: TrainingJob, rank: int | None) -> dict[str, str]:
    """Pod name -> source of the current attempt's pods (of one rank when given), by rank."""
    meta = job.metadata
    selector = f"{JOB_NAME_LABEL}={meta.name},{ATTEMPT_LABEL}={job.status.current_attempt}"
    pods = core.list_namespaced_pod(meta.namespace, label_selector=selector).items
    named = {str(pod.metadata.name): source_of(pod.metadata.labels or {}) for pod in pods if pod.metadata is not None}
    if rank is not None:
        named = {pod: source for pod, source in named.items() if source == f"rank {rank}"}
    return dict(sorted(named.items(), key=lambda item: item[1]))


def pod_logs(
    core: kubernetes.client.CoreV1Api, job: TrainingJob, follow: bool, rank: int | None
) -> Iterator[LogLine]:
    pods = job_pods(core, job, rank)
    if not pods:
        which = f"rank {rank} of " if rank is not None else ""
        raise LookupError(
            f"no pods of {which}TrainingJob {job.metadata.namespace}/{job.metadata.name} "
            f"(attempt {job.status.current_attempt}): not started yet, or cleaned up (runPolicy.cleanPodPolicy)"
        )
    if not follow:
        texts = {
            source: core.read_namespaced_pod_log(pod, job.metadata.namespace, container=CONTAINER, timestamps=True)
            for pod, source in pods.items()
        }
        yield from merge_timestamped(texts)
        return
    yield from _follow(core, job.metadata.namespace, pods)


def _follow(core: kubernetes.client.CoreV1Api, namespace: str, pods: dict[str, str]) -> Iterator[LogLine]:
    """Lines from every pod as they arrive (one reader thread each), until all their outputs end;
    a reader's failure is raised here, in the caller's thread, and stops the other readers that
    are still waiting for their containers (so none outlives the caller's interpreter)."""
    lines: queue.Queue[LogLine | BaseException | None] = queue.Queue()
    stop = threading.Event()

    def read(pod: str, source: str) -> None:
        try:
            for text in _stream(core, namespace, pod, stop):
                lines.put(LogLine(source, text))
            lines.put(None)
        except BaseException as exc:  # handed to the caller, which raises it
            lines.put(exc)

    readers = [
        threading.Thread(target=read, args=(pod, source), daemon=True, name=f"logs-{pod}")
        for pod, source in pods.items()
    ]
    for reader in readers:
        reader.start()
    running = len(pods)
    try:
        while running:
            item = lines.get()
            if item is None:
                running -= 1
            elif isinstance(item, BaseException):
                raise item
            else:
                yield item
    finally:
        stop.set()
        for reader in readers:
            reader.join(timeout=RETRY_SECONDS * 2)


def _stream(core: kubernetes.client.CoreV1Api, namespace: str, pod: str, stop: threading.Event) -> Iterator[str]:
    """One pod's output, followed; waits while its container has not started (the API answers
    400 then), as `kubectl logs -f` of a pending pod would not."""
    while True:
        try:
            response: Any = core.read_namespaced_pod_log(
                pod, namespace, container=CONTAINER, follow=True, _preload_content=False
            )
            break
        except ApiException as exc:
            if exc.status != 400 or "waiting to start" not in str(exc.body):
                raise
            if stop.wait(RETRY_SECONDS):
                return
    try:
        pending = b""
        for chunk in response.stream(decode_content=True):
            pending += chunk
            *complete, pending = pending.split(b"\n")
            for line in complete:
                yield line.decode(errors="replace")
        if pending:
            yield pending.decode(errors="replace")
    except urllib3.exceptions.ProtocolError:
        return  # the pod was deleted while followed: its output ends there
    finally:
        response.release_conn()
