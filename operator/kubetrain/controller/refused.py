"""A child the API server refuses. As invalid (422): the job fails with InvalidSpec and the API
server's own message, instead of the reconcile retrying the same create forever. Such a spec
passed the models and, with the webhook on, a server-side dry-run at admission; what is left
are refusals that depend on the cluster later (e.g. a policy admission plugin added since).
As forbidden (403: PodSecurity, a quota, a policy): Running=False/CreateRefused with the API
server's message, retried with exponential backoff, since the namespace may change.

Invoked from `kubetrain.controller.reconciler` when a create fails with 422 or 403.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from kubernetes.client.exceptions import ApiException

from kubetrain.controller.kube import Kube
from kubetrain.plan.decision import Decision, create_refused, invalid_spec


def api_message(exc: ApiException) -> str:
    """The Status message of an API error body, or its reason."""
    try:
        return str(json.loads(exc.body or "{}").get("message") or exc.reason)
    except (ValueError, AttributeError):
        return str(exc.reason)


def fail_refused_child(kube: Kube, raw: dict[str, Any], obj: dict[str, Any], exc: ApiException,
                       pods: list[str]) -> dict[str, Any] | None:
    """Writes Failed/InvalidSpec naming the refused child; returns the written job."""
    message = (
        f"the API server refuses the job's {obj['kind']} {obj['metadata']['name']}: {api_message(exc)}; "
        "fix spec.podTemplate (or the field named) and re-create the job"
    )
    return _apply(kube, raw, invalid_spec(raw, message, dt.datetime.now(dt.timezone.utc).replace(microsecond=0), pods))


def hold_forbidden_child(kube: Kube, raw: dict[str, Any], obj: dict[str, Any], exc: ApiException,
                         retry_in: float, never_ran: bool) -> dict[str, Any] | None:
    """Writes Running=False/CreateRefused naming the refused child; returns the written job."""
    message = (
        f"the API server refuses the job's {obj['kind']} {obj['metadata']['name']}: {api_message(exc)}; "
        f"retrying in {retry_in:g}s (fix the namespace's policy or quota, or spec.podTemplate)"
    )
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    return _apply(kube, raw, create_refused(raw, message, now, never_ran))


def _apply(kube: Kube, raw: dict[str, Any], decision: Decision) -> dict[str, Any] | None:
    meta = raw["metadata"]
    written = None
    if decision.status_patch:
        written = kube.patch_status(meta["namespace"], meta["name"], meta["resourceVersion"], decision.status_patch)
    for pod in decision.delete_pods:
        kube.delete_pod(meta["namespace"], pod)
    for event in decision.events:
        kube.post_event(raw, event.type, event.reason, event.message)
    return written
