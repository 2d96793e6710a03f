"""What a submission will meet, judged before it is sent: the same models and admission logic the
operator's webhooks run (policy/admission.py), the cost estimate the status will carry
(policy/budget.py), and the residency and budget verdicts on the policies the user may read.

The server still decides (its webhooks and the reconcile read fresh facts); this tells the user
at once, without a webhook installed, and in the words the operator would use.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from kubernetes.client.exceptions import ApiException

from kubetrain.api.budget import BudgetPolicy, Cost
from kubetrain.api.job import TrainingJob
from kubetrain.api.nodepools import NodePoolCatalogue
from kubetrain.api.residency import DataResidencyPolicy
from kubetrain.client.jobs import JOB, Client, as_dict
from kubetrain.policy.admission import spec_refusal
from kubetrain.policy.budget import BudgetFacts, BudgetVerdict, estimate, judge_budget
from kubetrain.policy.residency.evaluate import ResidencyFacts, claims_referenced, evaluate
from kubetrain.policy.residency.verdict import ResidencyVerdict


class Refused(ValueError):
    """The manifest would be refused: its message names the field, the value and the fix."""


@dataclass(frozen=True)
class Preview:
    job: TrainingJob
    cost: Cost
    residency: ResidencyVerdict | str = "not checked"
    """The verdict, or why it could not be judged (the user may not read the policies)."""
    budget: BudgetVerdict | str = "not checked"

    @property
    def refused(self) -> bool:
        """Whether the operator would refuse the job on these verdicts (one not judged refuses nothing;
        a budget that queues the job does not refuse it)."""
        residency, budget = self.residency, self.budget
        return (not isinstance(residency, str) and bool(residency.blocking)) or (
            not isinstance(budget, str) and not budget.allowed and not budget.queue
        )


def load_manifests(path: Path) -> list[dict[str, Any]]:
    """The TrainingJobs of a YAML file (several documents allowed); anything else is refused."""
    documents = [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]
    for doc in documents:
        if not isinstance(doc, dict) or doc.get("kind") != JOB.kind:
            kind = doc.get("kind") if isinstance(doc, dict) else type(doc).__name__
            raise Refused(f"{path}: kind {kind!r} is not a {JOB.kind}; kubetrain submit creates TrainingJobs only")
    if not documents:
        raise Refused(f"{path}: no TrainingJob in the file")
    return documents


def preview(client: Client, manifest: dict[str, Any], catalogue: NodePoolCatalogue) -> Preview:
    """Refused when the models refuse the manifest; else the job as the operator will read it,
    its cost bound and the verdicts."""
    raw = {**manifest, "metadata": {**(manifest.get("metadata") or {}), "namespace": client.namespace}}
    refusal = spec_refusal(raw)
    if refusal is not None:
        raise Refused(refusal)
    job = TrainingJob.model_validate(raw)
    return Preview(
        job=job,
        cost=estimate(job.spec, catalogue),
        residency=_residency(client, job, catalogue),
        budget=_budget(client, job, catalogue),
    )


def _residency(client: Client, job: TrainingJob, catalogue: NodePoolCatalogue) -> ResidencyVerdict | str:
    info = DataResidencyPolicy.api_info
    try:
        policies = as_dict(client.custom.list_cluster_custom_object(info.group, info.version, info.plural))["items"]
        labels = _namespace_labels(client) if policies else {}
        claims = {claim: _storage_class(client, claim) for claim in sorted(claims_referenced(job))}
    except ApiException as exc:
        return f"not checked ({exc.status} {exc.reason} reading DataResidencyPolicies, the namespace or its claims)"
    facts = ResidencyFacts(
        namespace=client.namespace, namespace_labels=labels, policies=policies, storage_classes=claims
    )
    return evaluate(job, facts, catalogue)


def _budget(client: Client, job: TrainingJob, catalogue: NodePoolCatalogue) -> BudgetVerdict | str:
    info = BudgetPolicy.api_info
    try:
        policies = as_dict(client.custom.list_cluster_custom_object(info.group, info.version, info.plural))["items"]
        if not policies:
            return judge_budget(job, BudgetFacts(namespace=client.namespace), catalogue, datetime.now(UTC))
        jobs = as_dict(
            client.custom.list_namespaced_custom_object(JOB.group, JOB.version, client.namespace, JOB.plural)
        )
        facts = BudgetFacts(
            namespace=client.namespace, namespace_labels=_namespace_labels(client), policies=policies,
            jobs=jobs["items"],
        )
    except ApiException as exc:
        return f"not checked ({exc.status} {exc.reason} reading BudgetPolicies, the namespace or its jobs)"
    return judge_budget(job, facts, catalogue, datetime.now(UTC))


def _namespace_labels(client: Client) -> dict[str, str]:
    metadata = client.core.read_namespace(client.namespace).metadata
    return dict(metadata.labels or {}) if metadata is not None else {}


def _storage_class(client: Client, claim: str) -> str | None:
    try:
        pvc = client.core.read_namespaced_persistent_volume_claim(claim, client.namespace)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    return pvc.spec.storage_class_name if pvc.spec is not None else None
