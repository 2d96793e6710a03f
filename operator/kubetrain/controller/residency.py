"""Fetching the facts a residency verdict needs, for the reconcile and the webhook alike."""

from __future__ import annotations

from typing import Any

from kubetrain.api.job import TrainingJob
from kubetrain.kube import Kube
from kubetrain.policy import DefaultResidency, ResidencyFacts
from kubetrain.policy.evaluate import claims_referenced


def fetch_facts(
    kube: Kube, job: TrainingJob | None, namespace: str, default: DefaultResidency,
    policies: list[dict[str, Any]] | None = None,
) -> ResidencyFacts:
    """The namespace's labels and claims are read fresh (no watch keeps them); `policies` are the
    reconcile's watch-fed list for jobs already started (controller/cache.py WatchedList), and
    are read fresh when None: by the admission webhook and before a job's pods first exist, which
    must count a policy created a moment ago."""
    claims = claims_referenced(job) if job is not None else set()
    return ResidencyFacts(
        namespace=namespace,
        namespace_labels=kube.namespace_labels(namespace),
        policies=kube.list_policies() if policies is None else policies,
        storage_classes={claim: kube.claim_storage_class(namespace, claim) for claim in sorted(claims)},
        default=default,
    )
