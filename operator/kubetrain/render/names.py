"""Child object names: deterministic, valid DNS labels, at most 63 characters.

Pod names double as hostnames and the Service name as their subdomain, so both must be DNS-1035
labels (lowercase, start with a letter). A name that had to be changed (too long, or a job
name with dots) gets a short hash of the job name, so two jobs never share a child name.
"""

from __future__ import annotations

import hashlib
import re

MAX_LABEL_LENGTH = 63
HASH_LENGTH = 5
_INVALID = re.compile(r"[^a-z0-9-]+")


def dns_label(base: str, suffix: str = "") -> str:
    cleaned = _INVALID.sub("-", base.lower()).strip("-")
    if not cleaned[:1].isalpha():
        cleaned = f"tj-{cleaned}".rstrip("-")
    if cleaned == base and len(base) + len(suffix) <= MAX_LABEL_LENGTH:
        return base + suffix
    digest = hashlib.sha256(base.encode()).hexdigest()[:HASH_LENGTH]
    room = MAX_LABEL_LENGTH - len(suffix) - HASH_LENGTH - 1
    return f"{cleaned[:room].rstrip('-')}-{digest}{suffix}"


def service_name(job_name: str) -> str:
    return dns_label(job_name)


def worker_name(job_name: str, index: int) -> str:
    return dns_label(job_name, f"-worker-{index}")


def ray_head_name(job_name: str) -> str:
    """The Ray head pod and its Service (different kinds may share a name)."""
    return dns_label(job_name, "-head")


def pod_group_name(job_name: str, attempt: int) -> str:
    """The PodGroup of one attempt (a new attempt, a new group). A DNS subdomain suffices for a
    PodGroup; a label is stricter and keeps one rule for every child."""
    return dns_label(job_name, f"-a{attempt}")


def trainer_access_name(job_name: str) -> str:
    """The ServiceAccount, Role and RoleBinding that let the job's trainer write its status."""
    return dns_label(job_name, "-trainer")


def master_addr(job_name: str) -> str:
    """Worker 0's DNS name: its hostname under the headless Service's subdomain."""
    return f"{worker_name(job_name, 0)}.{service_name(job_name)}"
