"""One job against the policies of its namespace -> a ResidencyVerdict. Pure: the controller and the
webhook fetch the facts (policies, namespace labels, claims' storage classes) and call this."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from kubetrain.api.job import TrainingJob
from kubetrain.api.nodepools import REGION_LABEL, NodePoolCatalogue
from kubetrain.api.residency import DataResidencyPolicy, DatasetField, Enforcement, LocationRule
from kubetrain.policy.residency import bypass
from kubetrain.policy.residency.expansion import OWN_RULE_URIS, Received, received
from kubetrain.policy.residency.match import rule_allows, selects
from kubetrain.policy.residency.uri import UriError, normalise
from kubetrain.policy.residency.verdict import ALLOW_ALL, ResidencyVerdict, Violation


class DefaultResidency(StrEnum):
    """What a namespace no policy selects gets (operator flag --default-residency)."""

    ALLOW_ALL = "allow-all"
    DENY_ALL = "deny-all"


class PodPlacement(BaseModel):
    """Where one of the job's pods was scheduled: its node and the node's region label."""

    model_config = ConfigDict(frozen=True)

    pod: str
    node: str
    region: str | None = Field(default=None, description="None: the node has no region label.")


class ResidencyFacts(BaseModel):
    """The cluster state one evaluation needs, fetched by the caller."""

    model_config = ConfigDict(frozen=True)

    namespace: str
    namespace_labels: dict[str, str] = Field(default_factory=dict)
    policies: list[dict[str, Any]] = Field(default_factory=list, description="Raw DataResidencyPolicy objects.")
    storage_classes: dict[str, str | None] = Field(
        default_factory=dict, description="Claim name -> storageClassName (None: missing or classless claim)."
    )
    default: DefaultResidency = DefaultResidency.ALLOW_ALL
    placements: list[PodPlacement] = Field(
        default_factory=list,
        description="The job's running pods on nodes that exist, and those nodes' regions (none at admission).",
    )


def claims_referenced(job: TrainingJob) -> set[str]:
    """Claims whose storage class the evaluation needs (pvc:// URIs and template PVC volumes)."""
    spec = job.spec
    named = [location.uri for location in (spec.dataset, spec.output) if location is not None]
    raws = named + [uri for _, _, uri in bypass.embedded_uris(spec)]
    if spec.task is not None and spec.task.finetune is not None:
        raws.append(spec.task.finetune.checkpoint_uri)
    claims = {claim for _, claim in bypass.pvc_volumes(spec) if claim}
    for raw in raws:
        try:
            uri = normalise(raw)
        except UriError:
            continue
        if uri.scheme == "pvc":
            claims.add(uri.host)
    return claims


def evaluate(job: TrainingJob, facts: ResidencyFacts, catalogue: NodePoolCatalogue) -> ResidencyVerdict:
    violations: list[Violation] = []
    selected: list[DataResidencyPolicy] = []
    for raw in facts.policies:
        name = str((raw.get("metadata") or {}).get("name", "?"))
        try:
            policy = DataResidencyPolicy.model_validate(raw)
        except ValidationError as exc:
            # Fail closed: a policy the operator cannot read might have been meant for this namespace.
            violations.append(
                Violation(policy=name, rule="spec", field="metadata.namespace", value=facts.namespace,
                          allowed=[], reason=f"the policy cannot be read: {exc.errors()[0]['msg']}; fix the policy")
            )
            continue
        if selects(policy.spec, facts.namespace, facts.namespace_labels):
            selected.append(policy)
    if not selected:
        if facts.default == DefaultResidency.DENY_ALL:
            violations.append(
                Violation(
                    policy="(operator default)", rule="--default-residency=deny-all", field="metadata.namespace",
                    value=facts.namespace, allowed=["namespaces selected by a DataResidencyPolicy"],
                    reason="no DataResidencyPolicy selects this namespace; ask the cluster admin for one",
                )
            )
        return ResidencyVerdict(violations=violations) if violations else ALLOW_ALL
    strings = list(received(job, catalogue)) if any(_has_data_rules(p) for p in selected) else []
    for policy in selected:
        violations += _check(policy, job, facts, catalogue, strings)
    regions = _combined_regions(selected)
    if regions is not None and not regions and not any(v.rule == "spec.allowedRegions" for v in violations):
        violations.append(
            Violation(
                policy=" + ".join(p.metadata.name for p in selected), rule="spec.allowedRegions",
                field="metadata.namespace", value=facts.namespace, allowed=[],
                reason="the policies selecting this namespace have no region in common",
            )
        )
    return ResidencyVerdict(policies=[p.metadata.name for p in selected], violations=violations, regions=regions)


def _has_data_rules(policy: DataResidencyPolicy) -> bool:
    return policy.spec.allowed_data is not None or policy.spec.allowed_outputs is not None


def _combined_regions(policies: list[DataResidencyPolicy]) -> list[str] | None:
    """The intersection of the Enforce policies' regions (Audit policies never move pods)."""
    sets = [
        set(p.spec.allowed_regions)
        for p in policies
        if p.spec.enforcement == Enforcement.ENFORCE and p.spec.allowed_regions is not None
    ]
    if not sets:
        return None
    return sorted(set.intersection(*sets))


class _Checker:
    """Collects one policy's violations of one job."""

    def __init__(self, policy: DataResidencyPolicy, facts: ResidencyFacts) -> None:
        self.policy = policy
        self.facts = facts
        self.violations: list[Violation] = []

    def add(self, rule: str, field: str, value: str, allowed: list[str], reason: str = "") -> None:
        self.violations.append(
            Violation(policy=self.policy.metadata.name, rule=rule, field=field, value=value, allowed=allowed,
                      reason=reason, enforcement=self.policy.spec.enforcement)
        )

    def location(self, rule: str, field: str, raw: str, rules: list[LocationRule], context: str = "") -> None:
        """`context` says where the URI came from when it is not the field's value as written."""
        allowed = [r.describe() for r in rules]
        try:
            uri = normalise(raw)
        except UriError as exc:
            self.add(rule, field, raw, allowed, f"{context}the URI cannot be checked: {exc}")
            return
        storage_class = self.facts.storage_classes.get(uri.host) if uri.scheme == "pvc" else None
        if not any(rule_allows(r, uri, storage_class) for r in rules):
            reason = f"{context}read as {uri}"
            if uri.scheme == "pvc":
                reason += f", claim storage class {storage_class or '(claim missing or classless)'}"
            self.add(rule, field, raw, allowed, reason)


def _check(
    policy: DataResidencyPolicy, job: TrainingJob, facts: ResidencyFacts, catalogue: NodePoolCatalogue,
    strings: list[Received],
) -> list[Violation]:
    spec, rules, check = job.spec, policy.spec, _Checker(policy, facts)
    pool = catalogue.pools.get(spec.node_pool) if spec.node_pool else None
    if rules.allowed_regions is not None:
        if not rules.allowed_regions:
            check.add("spec.allowedRegions", "spec.nodePool", spec.node_pool or "(unset)", [], "no region is allowed")
        elif pool is not None and pool.region is not None and pool.region not in rules.allowed_regions:
            check.add("spec.allowedRegions", "spec.nodePool", spec.node_pool or "",
                      list(rules.allowed_regions), f"pool {spec.node_pool} is in region {pool.region}")
    if rules.allowed_node_pools is not None and spec.node_pool not in rules.allowed_node_pools:
        check.add("spec.allowedNodePools", "spec.nodePool", spec.node_pool or "(unset)", list(rules.allowed_node_pools))
    if rules.allowed_regions is not None or rules.allowed_node_pools is not None:
        _check_placement_doors(check, job)
    if rules.allowed_regions is not None:
        _check_placements(check, facts.placements)
    if rules.allowed_data is not None:
        if spec.dataset is not None:
            check.location("spec.allowedData", "spec.dataset.uri", spec.dataset.uri, rules.allowed_data)
        if spec.task is not None and spec.task.finetune is not None:
            check.location("spec.allowedData", "spec.task.finetune.checkpointUri",
                           spec.task.finetune.checkpoint_uri, rules.allowed_data)
    if rules.allowed_outputs is not None and spec.output is not None:
        check.location("spec.allowedOutputs", "spec.output.uri", spec.output.uri, rules.allowed_outputs)
    if rules.required_dataset_fields:
        _check_dataset_terms(check, job)
    if rules.allowed_data is not None or rules.allowed_outputs is not None:
        locations = (rules.allowed_data or []) + (rules.allowed_outputs or [])
        _check_data_doors(check, job, locations)
        _check_received(check, job, strings, locations)
    return check.violations


_TERMS_EXAMPLES = {
    DatasetField.LICENSE: "the data's licence, e.g. CC-BY-4.0",
    DatasetField.CONSENT_BASIS: "the basis it may be used on, e.g. consent or contract",
}


def _check_dataset_terms(check: _Checker, job: TrainingJob) -> None:
    """requiredDatasetFields: the terms the data is used under, named in the spec so provenance
    and the model card carry them. A job naming no data set cannot state them, so it is refused."""
    dataset = job.spec.dataset
    values = {
        DatasetField.LICENSE: dataset.license if dataset else None,
        DatasetField.CONSENT_BASIS: dataset.consent_basis if dataset else None,
    }
    for field in check.policy.spec.required_dataset_fields or []:
        if values[field] is None:
            where = "spec.dataset" if dataset is None else f"spec.dataset.{field.value}"
            check.add("spec.requiredDatasetFields", f"spec.dataset.{field.value}", "(unset)",
                      [_TERMS_EXAMPLES[field]], f"the policy requires it; set {where}"
                      + (" with the uri of the data the job reads" if dataset is None else ""))


def _check_placement_doors(check: _Checker, job: TrainingJob) -> None:
    rules = check.policy.spec
    for path, value in bypass.scheduling_overrides(job.spec):
        check.add("spec.allowedRegions", path, value, ["unset (the default scheduler places the workers)"],
                  "it would place pods without the residency node affinity")
    for path, label, operator, values in bypass.node_label_choices(job.spec):
        if label == REGION_LABEL:
            allowed = rules.allowed_regions
            rule = "spec.allowedRegions"
        else:
            allowed = [job.spec.node_pool] if job.spec.node_pool else []
            rule = "spec.allowedNodePools"
        if allowed is None:
            continue
        if operator != "In" or not values or not set(values) <= set(allowed):
            check.add(rule, path, f"{label} {operator} {values}", [f"{label} In a subset of {allowed}"],
                      "the pod template may only narrow the operator's placement" if label == REGION_LABEL
                      else "choose the pool with spec.nodePool, not the pod template")


def _check_placements(check: _Checker, placements: list[PodPlacement]) -> None:
    """Where the pods really are: a pod scheduled before the namespace came under this policy
    (or before the policy narrowed its regions) may run anywhere its spec allowed then."""
    allowed = list(check.policy.spec.allowed_regions or [])
    for placed in placements:
        if placed.region not in allowed:
            check.add("spec.allowedRegions", f"pod {placed.pod}", f"node {placed.node}", allowed,
                      f"the pod runs in region {placed.region or '(none: the node has no region label)'}")


def _check_data_doors(check: _Checker, job: TrainingJob, rules: list[LocationRule]) -> None:
    for path, name, _ in bypass.env_entries(job.spec):
        if bypass.redirects_trust(name):
            check.add("spec.allowedData", f"{path}.name", name, ["variables that do not choose TLS certificates"],
                      "it changes which certificates TLS clients trust, and the operator cannot judge where such "
                      "a redirect sends data; remove it (the image's CA bundle is used)")
        elif bypass.redirects_storage(name):
            check.add("spec.allowedData", f"{path}.name", name,
                      ["variables that do not redirect storage or override the operator's"],
                      "it could redirect storage access past the policy")
    for path, value in bypass.name_redirects(job.spec):
        check.add("spec.allowedData", path, value, ["unset (the cluster's DNS, probes and hooks on the pod itself)"],
                  "it redirects names or requests to hosts of its own, and the operator cannot judge where such "
                  "a redirect sends data; remove it")
    for path in bypass.env_from(job.spec):
        check.add("spec.allowedData", path, "envFrom", ["env entries with literal values, listed one by one"],
                  "imported variables (names and values) cannot be checked; write each variable's value in env")
    for path, target in bypass.config_mounts(job.spec):
        check.add("spec.allowedData", path, target,
                  ["paths outside home directories, storage client configuration (.aws, .boto, .config, ...), "
                   "name resolution and CA certificates (/etc/hosts, /etc/resolv.conf, /etc/ssl, ...)"],
                  "files there can redirect storage clients past the policy; put the files elsewhere, e.g. a mount "
                  "at /etc/trainer")
    for path, text, raw in bypass.embedded_uris(job.spec):
        context = "" if raw in text else f"decoded from the escapes in {text!r}: "
        check.location("spec.allowedData/spec.allowedOutputs", path, raw, rules, context)
    for path, claim in bypass.pvc_volumes(job.spec):
        check.location("spec.allowedData/spec.allowedOutputs", f"{path}.persistentVolumeClaim.claimName",
                       f"pvc://{claim}/", rules)
    for path, kind in bypass.foreign_volumes(job.spec):
        check.add("spec.allowedData", f"{path}.{kind}", kind,
                  ["emptyDir", "configMap", "secret", "projected", "downwardAPI", "persistentVolumeClaim"],
                  "the policy cannot tell where this volume's data lives")


def _check_received(check: _Checker, job: TrainingJob, strings: list[Received], rules: list[LocationRule]) -> None:
    """What the pods' containers receive after the kubelet's $(VAR) expansion (policy.expansion):
    URIs assembled from pieces, flags from spec.ray.rayStartParams, valueFrom sources. URIs
    already judged where the spec spells them out are not reported twice."""
    spelled = {raw for _, _, raw in bypass.embedded_uris(job.spec)}
    allowed_sources = [str(s) for s in check.policy.spec.allowed_value_sources]
    for item in strings:
        if item.source is not None and item.value.hidden is not None:
            if item.source not in allowed_sources:
                check.add("spec.allowedValueSources", item.path, item.written,
                          allowed_sources + ["literal values"],
                          f"its value {item.value.hidden}; write the value literally")
            continue
        if item.value.hidden is not None:
            check.add("spec.allowedData", item.path, item.written, ["values the operator can read"],
                      f"after the kubelet's $(VAR) expansion it depends on what it cannot check: {item.value.hidden}; "
                      "write the value literally")
            continue
        expanded = item.value.text != item.written
        context = f"after the kubelet's $(VAR) expansion of {item.written!r}: " if expanded else ""
        if item.variable in OWN_RULE_URIS:
            # The trainer reads the whole value as the dataset (output) URI: judged by that field's rules.
            spec = check.policy.spec
            own = spec.allowed_data if item.variable == "KUBETRAIN_DATASET_URI" else spec.allowed_outputs
            if own is not None:
                rule = "spec.allowedData" if item.variable == "KUBETRAIN_DATASET_URI" else "spec.allowedOutputs"
                check.location(rule, item.path, item.value.text, own, context)
            continue
        if item.source is not None:
            context = f"its {item.source} value is {item.value.text!r}: "
        for raw in bypass.storage_uris(item.value.text):
            if expanded or raw not in spelled:
                check.location("spec.allowedData/spec.allowedOutputs", item.path, raw, rules, context)
