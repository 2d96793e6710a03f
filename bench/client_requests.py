"""Client-side CPU per API request: the official client's generated methods against the
operator's JSON path (`Kube._call`), for the objects a job start creates and the status patch and
Event that follow. The HTTP exchange itself is replaced by a canned answer (the body sent back with
the fields an API server adds), so the figures are only what each path spends in Python around
the request: argument validation, body serialisation, response parsing, model round trips.

    .venv/bin/python bench/client_requests.py            # 2,000 rounds

Not a test: it prints a table.
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kubernetes
import yaml

from kubetrain.api import default_catalogue
from kubetrain.controller.kube import JOB, Kube
from kubetrain.controller.metrics import OperatorMetrics
from kubetrain.plan.decision import PlanInputs, plan_job
from kubetrain.policy.residency import ResidencyFacts
from kubetrain.render.settings import RenderSettings

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "pytorch-ddp.yaml"
NOW = dt.datetime(2026, 12, 3, 12, tzinfo=dt.timezone.utc)


class CannedResponse:
    """What rest_client.request returns, for a body the server echoes with its own fields."""

    def __init__(self, body: bytes) -> None:
        self.status, self.reason, self.data = 201, "Created", body
        self.headers = {"content-type": "application/json"}

    def read(self) -> bytes:
        return self.data


def as_stored(obj: dict[str, Any]) -> bytes:
    """`obj` as the API server answers a create: uid, resourceVersion, timestamps, managedFields."""
    stored = copy.deepcopy(obj)
    meta = stored.setdefault("metadata", {})
    meta.update(uid="6b0e6c52-4c1c-4f7e-9d2a-0c1d2e3f4a5b", resourceVersion="123456",
                creationTimestamp="2026-12-03T12:00:00Z",
                managedFields=[{"manager": "kubetrain-operator", "operation": "Update", "apiVersion": "v1",
                                "time": "2026-12-03T12:00:00Z", "fieldsType": "FieldsV1",
                                "fieldsV1": {"f:metadata": {"f:labels": {}}, "f:spec": {}}}])
    if stored.get("kind") == "Pod":
        stored["status"] = {"phase": "Pending", "qosClass": "Burstable"}
    return json.dumps(stored).encode()


def job_start() -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The example job and the objects the planner creates for it."""
    raw: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text())
    raw["metadata"].update(namespace="team", uid="u", generation=1, resourceVersion="1",
                           creationTimestamp="2026-12-03T11:59:00Z")
    inputs = PlanInputs(catalogue=default_catalogue(), render=RenderSettings(default_image="kubetrain/trainer:dev"))
    decision = plan_job(raw, [], [], inputs, NOW, ResidencyFacts(namespace="team"))
    return raw, list(decision.create)


def generated_calls(api: kubernetes.client.ApiClient, raw: dict[str, Any]) -> dict[str, Callable[[Any], Any]]:
    """The generated client's method for each kind, its answer turned into a dict as the
    operator used it."""
    core, rbac = kubernetes.client.CoreV1Api(api), kubernetes.client.RbacAuthorizationV1Api(api)
    custom = kubernetes.client.CustomObjectsApi(api)
    to_dict = api.sanitize_for_serialization
    name = raw["metadata"]["name"]
    return {
        "Pod": lambda body: to_dict(core.create_namespaced_pod("team", body)),
        "Service": lambda body: to_dict(core.create_namespaced_service("team", body)),
        "ServiceAccount": lambda body: to_dict(core.create_namespaced_service_account("team", body)),
        "Role": lambda body: to_dict(rbac.create_namespaced_role("team", body)),
        "RoleBinding": lambda body: to_dict(rbac.create_namespaced_role_binding("team", body)),
        "Event": lambda body: core.create_namespaced_event("team", body),
        "status patch": lambda body: custom.patch_namespaced_custom_object_status(
            JOB.group, JOB.version, "team", JOB.plural, name, body
        ),
    }


def json_calls(kube: Kube, raw: dict[str, Any]) -> dict[str, Callable[[Any], Any]]:
    name = raw["metadata"]["name"]
    calls: dict[str, Callable[[Any], Any]] = {
        kind: (lambda body: kube.create("team", body))
        for kind in ("Pod", "Service", "ServiceAccount", "Role", "RoleBinding")
    }
    calls["Event"] = lambda body: kube.post_event(raw, "Normal", "Started", body["message"])
    calls["status patch"] = lambda body: kube.patch_status("team", name, "1", body["status"])
    return calls


def microseconds(call: Callable[[Any], Any], body: dict[str, Any], rounds: int) -> float:
    began = time.process_time()
    for _ in range(rounds):
        call(body)
    return (time.process_time() - began) / rounds * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2000)
    args = parser.parse_args()
    raw, created = job_start()
    event = {"metadata": {"name": "x.1", "namespace": "team"}, "involvedObject": {"name": "x"}, "reason": "Started",
             "message": "all 4 workers are running", "type": "Normal"}
    status = {"metadata": {"resourceVersion": "1"},
              "status": {"phase": "Running", "replicas": {"worker": {"active": 4}},
                         "conditions": [{"type": "Running", "status": "True", "reason": "AllWorkersRunning",
                                         "lastTransitionTime": "2026-12-03T12:00:00Z"}]}}
    bodies: dict[str, dict[str, Any]] = {}
    for obj in created:
        bodies.setdefault(obj["kind"], obj)
    bodies["Event"], bodies["status patch"] = event, status
    api = kubernetes.client.ApiClient(kubernetes.client.Configuration(host="https://127.0.0.1:6443"))
    kube = Kube(api, OperatorMetrics())
    paths = {"generated client": generated_calls(api, raw), "JSON path": json_calls(kube, raw)}
    counts = {kind: sum(1 for obj in created if obj["kind"] == kind) for kind in bodies}
    counts["Event"], counts["status patch"] = 3, 4  # about what a job start writes (bench/README.md)
    print(f"rounds={args.rounds}; per job start: {', '.join(f'{n} {k}' for k, n in counts.items())}")
    print(f"{'request':<16}{'generated µs':>14}{'JSON µs':>10}{'ratio':>8}")
    totals = dict.fromkeys(paths, 0.0)
    for kind, body in bodies.items():
        figures = {}
        for label, calls in paths.items():
            api.rest_client.request = lambda *_, body=body, **__: CannedResponse(as_stored(body))  # type: ignore[method-assign]
            microseconds(calls[kind], body, 50)  # warm-up
            figures[label] = microseconds(calls[kind], body, args.rounds)
            totals[label] += figures[label] * counts[kind]
        generated, ours = figures["generated client"], figures["JSON path"]
        print(f"{kind:<16}{generated:>14.0f}{ours:>10.0f}{ours / generated:>8.2f}")
    generated, ours = totals["generated client"], totals["JSON path"]
    print(f"{'per job start':<16}{generated:>14.0f}{ours:>10.0f}{ours / generated:>8.2f}")


if __name__ == "__main__":
    main()
