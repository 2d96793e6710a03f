"""The trainer may write the status of its own job and nothing else."""

from __future__ import annotations

from kubetrain.api import default_catalogue
from kubetrain.render import RenderSettings, render_pytorch
from kubetrain.render.access import render_access
from tests.builders import JobBuilder

SETTINGS = RenderSettings(default_image="img")


FRAUD = JobBuilder.bare("fraud", "risk").uid("u").spec(
    workers=1,
    task={"type": "tabular-classification"},
    dataset={"uri": "file:///d.csv"},
    output={"uri": "file:///out"},
)


def test_role_is_limited_to_the_jobs_own_status() -> None:
    objects = {o["kind"]: o for o in render_access(FRAUD.obj())}
    assert set(objects) == {"ServiceAccount", "Role", "RoleBinding"}
    assert objects["Role"]["rules"] == [
        {
            "apiGroups": ["kubetrain.io"],
            "resources": ["trainingjobs/status"],
            "resourceNames": ["fraud"],
            "verbs": ["get", "patch"],
        }
    ]
    binding = objects["RoleBinding"]
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "fraud-trainer"}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "fraud-trainer", "namespace": "risk"}]
    for obj in objects.values():
        assert obj["metadata"]["ownerReferences"][0]["uid"] == "u"
        assert obj["metadata"]["namespace"] == "risk"


def test_pods_run_as_the_trainer_account() -> None:
    pods = render_pytorch(FRAUD.obj(), default_catalogue(), SETTINGS).pods
    assert {p["spec"]["serviceAccountName"] for p in pods} == {"fraud-trainer"}


def test_a_users_own_account_is_bound_instead_of_creating_one() -> None:
    custom = FRAUD.spec(podTemplate={"spec": {"serviceAccountName": "s3-reader"}}).obj()
    objects = {o["kind"]: o for o in render_access(custom)}
    assert "ServiceAccount" not in objects
    assert objects["RoleBinding"]["subjects"][0]["name"] == "s3-reader"
    pods = render_pytorch(custom, default_catalogue(), SETTINGS).pods
    assert {p["spec"]["serviceAccountName"] for p in pods} == {"s3-reader"}
