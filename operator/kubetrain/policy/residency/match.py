"""Pattern matching: which namespaces a policy selects, which URIs a location rule allows."""

from __future__ import annotations

from fnmatch import fnmatchcase

from kubetrain.api.residency import LabelSelector, LocationRule, NamespaceScope, SelectorOperator
from kubetrain.policy.residency.uri import StorageUri


def selects(spec: NamespaceScope, namespace: str, labels: dict[str, str]) -> bool:
    """By name or by labels: either is enough."""
    if namespace in spec.namespaces:
        return True
    return spec.namespace_selector is not None and selector_matches(spec.namespace_selector, labels)


def selector_matches(selector: LabelSelector, labels: dict[str, str]) -> bool:
    if any(labels.get(key) != value for key, value in selector.match_labels.items()):
        return False
    for requirement in selector.match_expressions:
        present = requirement.key in labels
        value = labels.get(requirement.key)
        ok = {
            SelectorOperator.IN: present and value in requirement.values,
            SelectorOperator.NOT_IN: not present or value not in requirement.values,
            SelectorOperator.EXISTS: present,
            SelectorOperator.DOES_NOT_EXIST: not present,
        }[requirement.operator]
        if not ok:
            return False
    return True


def rule_allows(rule: LocationRule, uri: StorageUri, storage_class: str | None) -> bool:
    """`storage_class` is the claim's storageClassName for pvc URIs (None when the claim is
    missing or has no class: then a rule that lists classes cannot allow it)."""
    if rule.scheme != uri.scheme:
        return False
    if rule.bucket is not None and not fnmatchcase(uri.host, rule.bucket.lower()):
        return False
    prefix = [segment for segment in rule.prefix.split("/") if segment]
    if len(prefix) > len(uri.segments):
        return False
    if not all(fnmatchcase(part, pattern) for part, pattern in zip(uri.segments, prefix)):
        return False
    if rule.storage_classes is not None:
        return storage_class is not None and storage_class in rule.storage_classes
    return True
