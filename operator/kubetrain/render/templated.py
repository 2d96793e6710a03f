"""A TrainingJob stamped out of a parent's job template (a TrainingSchedule's run, a
TrainingSweep's trial): owned by the parent, so deleting the parent deletes its jobs (the
ModelVersions they record are not owned and stay)."""

from __future__ import annotations

from typing import Any

from kubetrain.api.contract import API_VERSION, KIND, MANAGED_BY, MANAGED_BY_LABEL
from kubetrain.api.schedule import JobTemplate, ScheduleMetadata


def templated_job(
    owner_kind: str,
    owner: ScheduleMetadata,
    template: JobTemplate,
    name: str,
    labels: dict[str, str],
    annotations: dict[str, str] | None = None,
    spec: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """`labels` and `annotations` are added to the template's; `spec` replaces the template's
    (already camelCased, as the API server stores it) when the parent varies it."""
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {
            "name": name,
            "namespace": owner.namespace,
            "labels": {**template.metadata.labels, MANAGED_BY_LABEL: MANAGED_BY, **labels},
            "annotations": {**template.metadata.annotations, **(annotations or {})},
            "ownerReferences": [
                {"apiVersion": API_VERSION, "kind": owner_kind, "name": owner.name, "uid": owner.uid,
                 "controller": True, "blockOwnerDeletion": True}
            ],
        },
        "spec": spec if spec is not None else template.spec.to_k8s(),
    }
