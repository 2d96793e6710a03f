"""Fetching what the budget decision needs, for the reconcile and the webhook."""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import urllib3
from kubernetes.client.exceptions import ApiException

from kubetrain.api.nodepools import NodePoolCatalogue
from kubetrain.controller.cache import WatchedList
from kubetrain.controller.kube import Kube
from kubetrain.policy.budget import BudgetFacts, BudgetUsage, budget_usage


def fetch_budget(
    kube: Kube, namespace: str, namespace_labels: dict[str, str] | None = None,
    policies: list[dict[str, Any]] | None = None,
) -> BudgetFacts:
    """Fresh on every call, like residency facts; the namespace's labels and the policies (read
    here unless the caller already has them fresh) and jobs only when a policy exists, so
    namespaces without budgets cost at most one list of policies."""
    policies = kube.list_budget_policies() if policies is None else policies
    if not policies:
        return BudgetFacts(namespace=namespace)
    return BudgetFacts(
        namespace=namespace,
        namespace_labels=kube.namespace_labels(namespace) if namespace_labels is None else namespace_labels,
        policies=policies,
        jobs=kube.list_jobs(namespace),
    )


class BudgetUsageReader:
    """What each BudgetPolicy leaves each namespace, for the metrics at scrape time: the policies
    from a watch-fed list, the jobs from the operator's cache, the namespaces' labels from the
    residency reader's short-lived copies. Nothing is read while no BudgetPolicy exists."""

    def __init__(
        self,
        kube: Kube,
        jobs: Callable[[], list[dict[str, Any]]],
        namespace_labels: Callable[[str], dict[str, str]],
        catalogue: NodePoolCatalogue,
    ) -> None:
        self.policies = WatchedList(kube.list_budget_policies)
        self._jobs = jobs
        self._labels = namespace_labels
        self._catalogue = catalogue

    def changed(self) -> None:
        self.policies.changed()

    def usage(self) -> list[BudgetUsage]:
        policies = self.policies.get()
        if not policies:
            return []
        by_namespace: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for job in self._jobs():
            by_namespace[job["metadata"]["namespace"]].append(job)
        now = dt.datetime.now(dt.timezone.utc)
        usages: list[BudgetUsage] = []
        for namespace, jobs in sorted(by_namespace.items()):
            try:
                labels = self._labels(namespace)
            except (ApiException, urllib3.exceptions.HTTPError) as exc:
                # A scrape must not fail for one namespace: its gauges are left out until the next.
                logging.getLogger("kubetrain.budget").warning("labels of namespace %s unreadable: %s", namespace, exc)
                continue
            facts = BudgetFacts(namespace=namespace, namespace_labels=labels, policies=policies, jobs=jobs)
            usages.extend(budget_usage(facts, self._catalogue, now))
        return usages
