"""Native gang placement, rendered (render/gang.py): one PodGroup per attempt whose minCount is
every pod of the attempt (PyTorch workers; Ray head and workers), each pod joined to it, created
before the pods; nothing of it where the operator found no PodGroup API or the job opts out."""

from __future__ import annotations

from functools import partial

import pytest

from kubetrain.api import default_catalogue
from kubetrain.controller.config import OperatorConfig
from kubetrain.plan import plan
from kubetrain.render import RenderSettings
from kubetrain.render.job import render_children
from tests.builders import JobBuilder
from tests.unit.test_plan_rules import NOW, observe

CATALOGUE = default_catalogue()
GANG = RenderSettings(default_image="trainer:test", gang_scheduling=True)
DDP = JobBuilder.example("pytorch-ddp.yaml").placed("ns").status()
RAY = JobBuilder.example("ray-train.yaml").placed("ns").status()


@pytest.mark.parametrize(("job", "group", "pods"), [
    (DDP.spec(workers=3), "pytorch-ddp-a0", 3),
    (DDP.spec(workers=2).status(attempt=4, restarts=2), "pytorch-ddp-a4", 2),
    (RAY, "ray-train-a0", 3),  # the head and its two workers
], ids=["pytorch", "later-attempt", "ray"])
def test_every_pod_of_the_attempt_joins_one_gang_named_after_the_attempt(
    job: JobBuilder, group: str, pods: int
) -> None:
    children = render_children(job.obj(), CATALOGUE, GANG)

    assert children.pod_group is not None
    assert children.pod_group["apiVersion"] == "scheduling.k8s.io/v1beta1"
    assert children.pod_group["metadata"]["name"] == group
    assert children.pod_group["metadata"]["ownerReferences"][0]["kind"] == "TrainingJob"
    assert children.pod_group["spec"] == {"schedulingPolicy": {"gang": {"minCount": pods}}}
    assert len(children.pods) == pods
    assert all(p["spec"]["schedulingGroup"] == {"podGroupName": group} for p in children.pods)


@pytest.mark.parametrize(("job", "settings"), [
    (DDP, RenderSettings(default_image="trainer:test")),
    (DDP.run_policy(gangScheduling="Off"), GANG),
], ids=["api-not-served-or-operator-off", "job-opts-out"])
def test_no_gang_pods_are_placed_one_by_one(job: JobBuilder, settings: RenderSettings) -> None:
    children = render_children(job.obj(), CATALOGUE, settings)
    assert children.pod_group is None
    assert all("schedulingGroup" not in p["spec"] for p in children.pods)


def test_the_group_is_created_before_the_pods_that_join_it() -> None:
    job = DDP.spec(workers=2).obj()
    result = plan(job, observe(service=False), partial(render_children, job, CATALOGUE, GANG), CATALOGUE, GANG, NOW)
    kinds = [o["kind"] for o in result.create if o["kind"] in ("PodGroup", "Pod")]
    assert kinds == ["PodGroup", "Pod", "Pod"]


@pytest.mark.parametrize(("served", "setting", "gang"), [
    (True, "auto", True),
    (False, "auto", False),  # the cluster has no PodGroup API: today's placement
    (True, "off", False),  # --gang-scheduling=off
])
def test_gangs_need_the_api_served_and_the_operator_allowing_them(served: bool, setting: str, gang: bool) -> None:
    config = OperatorConfig.model_validate({"gang_scheduling": setting})
    assert config.plan_inputs(pod_groups_served=served).render.gang_scheduling is gang
