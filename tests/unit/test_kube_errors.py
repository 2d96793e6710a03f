"""Which API refusals the operator's client treats as expected rather than as failures."""

from __future__ import annotations

import json

from kubernetes.client.exceptions import ApiException

from kubetrain.controller.kube import namespace_terminating


def refusal(status: int, body: dict[str, object]) -> ApiException:
    exc = ApiException(status=status, reason="Forbidden")
    exc.body = json.dumps(body)
    return exc


def test_a_namespace_being_deleted_is_no_permission_problem() -> None:
    # The Status the API server answers to a create in a Terminating namespace (checked on v1.37).
    terminating = refusal(403, {
        "kind": "Status", "status": "Failure", "reason": "Forbidden", "code": 403,
        "message": 'events "x" is forbidden: unable to create new content in namespace t '
        "because it is being terminated",
        "details": {"kind": "events", "causes": [
            {"reason": "NamespaceTerminating", "message": "namespace t is being terminated",
             "field": "metadata.namespace"}]},
    })
    assert namespace_terminating(terminating)


def test_rbac_refusal_is_not_mistaken_for_it() -> None:
    rbac = refusal(403, {"kind": "Status", "status": "Failure", "reason": "Forbidden", "code": 403,
                         "message": 'events is forbidden: User "x" cannot create resource "events"'})
    assert not namespace_terminating(rbac)
    assert not namespace_terminating(ApiException(status=404, reason="Not Found"))
