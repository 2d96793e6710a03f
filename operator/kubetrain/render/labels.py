"""The labels of the operator's children (docs/contracts.md): how the operator finds them again."""

from __future__ import annotations

from kubetrain.api.contract import (
    APP_COMPONENT_LABEL,
    APP_INSTANCE_LABEL,
    APP_NAME,
    APP_NAME_LABEL,
    ATTEMPT_LABEL,
    JOB_NAME_LABEL,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    REPLICA_INDEX_LABEL,
    ROLE_LABEL,
    WORKER_ROLE,
    WORKERS_LABEL,
)


def role_labels(job_name: str, role: str, index: int, attempt: int, workers: int) -> dict[str, str]:
    """`workers` is spec.workers the pod was rendered for: a pod of a group of another size is
    rolled into a new attempt when spec.workers is edited."""
    return {
        **job_labels(job_name),
        APP_COMPONENT_LABEL: role,
        ROLE_LABEL: role,
        REPLICA_INDEX_LABEL: str(index),
        ATTEMPT_LABEL: str(attempt),
        WORKERS_LABEL: str(workers),
    }


def role_selector(job_name: str, role: str) -> dict[str, str]:
    return {JOB_NAME_LABEL: job_name, ROLE_LABEL: role}


def job_labels(job_name: str) -> dict[str, str]:
    """On every child; the operator lists its children by managed-by and job-name."""
    return {
        APP_NAME_LABEL: APP_NAME,
        APP_INSTANCE_LABEL: job_name,
        MANAGED_BY_LABEL: MANAGED_BY,
        JOB_NAME_LABEL: job_name,
    }


def worker_selector(job_name: str) -> dict[str, str]:
    return role_selector(job_name, WORKER_ROLE)


def worker_labels(job_name: str, index: int, attempt: int, workers: int) -> dict[str, str]:
    return role_labels(job_name, WORKER_ROLE, index, attempt, workers)
