"""Fetching what the budget decision needs, for the reconcile and the webhook."""

from __future__ import annotations

from kubetrain.controller.kube import Kube
from kubetrain.policy.budget import BudgetFacts


def fetch_budget(kube: Kube, namespace: str, namespace_labels: dict[str, str] | None = None) -> BudgetFacts:
    """Fresh on every call, like residency facts; the namespace's labels (read here unless the
    caller already has them fresh) and jobs only when a policy exists, so namespaces without
    budgets cost one list of policies."""
    policies = kube.list_budget_policies()
    if not policies:
        return BudgetFacts(namespace=namespace)
    return BudgetFacts(
        namespace=namespace,
        namespace_labels=kube.namespace_labels(namespace) if namespace_labels is None else namespace_labels,
        policies=policies,
        jobs=kube.list_jobs(namespace),
    )
