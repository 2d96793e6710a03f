"""Admission's last check of a pod template: the job's pods, rendered as the operator will
create them, are sent to the API server with dryRun=All, so a pod the API server would refuse
as invalid (422: a bad label value, an unknown enum, a malformed quantity...) refuses the job
instead of failing every pod create later. Refusals that are not about the pod's validity
(quota, a missing ServiceAccount, a policy plugin) do not refuse the job: they depend on the
cluster at the time the pods are created, and the reconcile reports them then.

Invoked from the `spec` validating webhook (`kubetrain.controller.handlers`).
"""

from __future__ import annotations

import copy
from typing import Any

import urllib3
from kubernetes.client.exceptions import ApiException

from kubetrain.api.contract import ROLE_LABEL
from kubetrain.api.job import TrainingJob
from kubetrain.controller.kube import Kube
from kubetrain.controller.refused import api_message
from kubetrain.plan.decision import PlanInputs
from kubetrain.render.errors import InvalidSpec
from kubetrain.render.job import render_job

# The job's own ServiceAccount is created with its pods; the dry-run uses the namespace's
# default account so the ServiceAccount admission plugin has one to find.
DRY_RUN_ACCOUNT = "default"


def pod_refusal(kube: Kube, job: TrainingJob, inputs: PlanInputs) -> str | None:
    """The API server's refusal of one pod of each role of the job, or None."""
    try:
        pods = render_job(job, inputs.catalogue, inputs.render).pods
    except InvalidSpec:
        return None  # the reconcile fails the job with the same message before any pod exists
    roles: dict[str, dict[str, Any]] = {}
    for pod in pods:
        roles.setdefault(pod["metadata"]["labels"].get(ROLE_LABEL, ""), pod)
    for pod in roles.values():
        probe = copy.deepcopy(pod)
        probe["spec"]["serviceAccountName"] = DRY_RUN_ACCOUNT
        probe["metadata"].pop("ownerReferences", None)  # the operator's own, and the uid may not exist yet
        try:
            kube.dry_run_pod(job.metadata.namespace, probe)
        except urllib3.exceptions.HTTPError:
            return None  # the API server was not reachable: the reconcile reports a refusal later
        except ApiException as exc:
            if exc.status == 422:
                meta = job.metadata
                return (f"TrainingJob {meta.namespace}/{meta.name} is invalid: its pod {pod['metadata']['name']} "
                        f"would be refused: {api_message(exc)}; fix spec.podTemplate")
            return None
    return None
