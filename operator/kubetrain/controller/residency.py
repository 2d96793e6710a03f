"""Fetching the facts a residency verdict needs, for the reconcile and the webhook alike."""

from __future__ import annotations

from kubetrain.api.job import TrainingJob
from kubetrain.kube import Kube
from kubetrain.policy import DefaultResidency, ResidencyFacts
from kubetrain.policy.evaluate import claims_referenced


def fetch_facts(kube: Kube, job: TrainingJob | None, namespace: str, default: DefaultResidency) -> ResidencyFacts:
    """Fresh on every call: policies change after admission, and a stale cache would let a job
    start under a policy that no longer allows it."""
    claims = claims_referenced(job) if job is not None else set()
    return ResidencyFacts(
        namespace=namespace,
        namespace_labels=kube.namespace_labels(namespace),
        policies=kube.list_policies(),
        storage_classes={claim: kube.claim_storage_class(namespace, claim) for claim in sorted(claims)},
        default=default,
    )
