"""Which admission requests reach the operator's webhooks, and how large they may be.

kopf registers each validating handler for whole operations (CREATE, UPDATE). Every UPDATE would
then reach the operator, a label or a finalizer change included, and with `failurePolicy: Fail`
an operator that is down (or a request too large for it) would refuse it: deletion could wedge
on its finalizer. So each handler's webhook carries CEL `matchConditions` (Kubernetes >= 1.30)
that send it only the updates it judges: spec changes for `spec`, `residency` and `budget`, a
change of the submitter annotation for `provenance`. Everything else never leaves the API server.

An UPDATE's AdmissionReview carries the old and the new object; the API server accepts objects
up to its 3 MiB request limit, so the server reads bodies up to two of those plus the envelope.

Invoked from `kubetrain.controller.webhook_server` when the webhook server is built.
"""

from __future__ import annotations

from typing import Any

import aiohttp.web
import kopf
from kopf._core.engines import admission

from kubetrain.api.provenance import SUBMITTED_BY_ANNOTATION

MAX_OBJECT_BYTES = 3 * 1024 * 1024  # kube-apiserver's default --max-request-bytes for one object
MAX_REVIEW_BYTES = 2 * MAX_OBJECT_BYTES + 1024 * 1024  # old + new object + the review envelope

SPEC_CHANGED = {"name": "spec-changed", "expression": "request.operation != 'UPDATE' || object.spec != oldObject.spec"}


def _annotation(obj: str) -> str:
    key = SUBMITTED_BY_ANNOTATION
    return (f"(has({obj}.metadata.annotations) && '{key}' in {obj}.metadata.annotations ? "
            f"{obj}.metadata.annotations['{key}'] : '')")


SUBMITTER_CHANGED = {
    "name": "submitter-changed",
    "expression": f"{_annotation('object')} != {_annotation('oldObject')}",
}
MATCH_CONDITIONS: dict[str, list[dict[str, str]]] = {
    "spec": [SPEC_CHANGED],
    "residency": [SPEC_CHANGED],
    "budget": [SPEC_CHANGED],
    "provenance": [SUBMITTER_CHANGED],
}


def scoped(webhooks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """kopf's webhook entries (named `<handler id>.<configuration>`) with their match conditions."""
    return [
        {**hook, "matchConditions": MATCH_CONDITIONS[hook["name"].split(".", 1)[0]]}
        if hook["name"].split(".", 1)[0] in MATCH_CONDITIONS else hook
        for hook in webhooks
    ]


_kopf_build_webhooks = admission.build_webhooks


def _build_scoped_webhooks(*args: Any, **kwargs: Any) -> list[dict[str, Any]]:
    return scoped(_kopf_build_webhooks(*args, **kwargs))


def install() -> None:
    """Makes kopf's configuration manager register scoped webhooks (idempotent). kopf has no
    option for match conditions, so its builder is wrapped where the manager looks it up."""
    admission.build_webhooks = _build_scoped_webhooks


class SizedWebhookServer(kopf.WebhookServer):
    """kopf's server reads request bodies up to aiohttp's default 1 MiB; an update of an object
    over half of that was answered 413 before any handler saw it."""

    @staticmethod
    async def _serve(fn: kopf.WebhookFn, request: aiohttp.web.Request) -> aiohttp.web.Response:
        return await kopf.WebhookServer._serve(fn, request.clone(client_max_size=MAX_REVIEW_BYTES))
