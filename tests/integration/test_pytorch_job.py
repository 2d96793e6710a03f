"""TrainingJob on the real control plane, reconciled by the operator running as a subprocess:
placement, env, all-or-nothing start, group restarts, backoff, deadline, suspend, TTL, deletion,
operator restarts."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import yaml

from kubetrain.devcluster.cluster import LocalCluster
from kubetrain.render.names import trainer_access_name
from tests.builders import EXAMPLES, example
from tests.helpers import wait_for
from tests.jobs import GROUP, PLURAL, VERSION, Jobs
from tests.operator_process import WEBHOOK_CONFIGURATION, OperatorProcess
from tests.service_account import service_account_kubeconfig

pytestmark = pytest.mark.cluster


@pytest.fixture
def jobs(api: kubernetes.client.ApiClient, namespace: str, operator: OperatorProcess) -> Jobs:
    return Jobs(api, namespace)


def env_of(pod: Any) -> dict[str, str]:
    return {e.name: e.value for e in pod.spec.containers[0].env if e.value is not None}


def start_running(jobs: Jobs, **overrides: Any) -> tuple[str, list[Any]]:
    name = jobs.create(example("pytorch-ddp.yaml"), **overrides)
    pods = jobs.wait_pods(name, 2, phase="Running")
    jobs.wait_phase(name, "Running")
    return name, pods


def test_example_runs_on_its_pool_and_succeeds(jobs: Jobs, cluster: LocalCluster, namespace: str) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", str(EXAMPLES / "pytorch-ddp.yaml"))
    name = "pytorch-ddp"
    pods = jobs.wait_pods(name, 2, phase="Running")
    job = jobs.get(name)

    service = jobs.core.read_namespaced_service(name, namespace)
    assert service.spec.cluster_ip == "None"
    assert service.metadata.owner_references[0].uid == job["metadata"]["uid"]

    for index, pod in enumerate(pods):
        assert pod.metadata.name == f"{name}-worker-{index}"
        assert pod.metadata.owner_references[0].uid == job["metadata"]["uid"]
        assert pod.metadata.owner_references[0].controller is True
        assert pod.metadata.labels["kubetrain.io/job-name"] == name
        assert pod.metadata.labels["kubetrain.io/replica-index"] == str(index)
        env = env_of(pod)
        assert env["MASTER_ADDR"] == f"{name}-worker-0.{name}"
        assert env["MASTER_PORT"] == "29500"
        assert env["WORLD_SIZE"] == "2"
        assert env["NODE_RANK"] == str(index)
        assert env["RANK"] == str(index)
        assert env["NPROC_PER_NODE"] == "1"
        resources = pod.spec.containers[0].resources
        assert resources.limits["nvidia.com/gpu"] == "1"
        assert resources.requests["nvidia.com/gpu"] == "1"
        assert pod.spec.node_selector["kubetrain.io/node-pool"] == "a100-eu"
        assert any(t.key == "nvidia.com/gpu" for t in pod.spec.tolerations)
        node = jobs.core.read_node(pod.spec.node_name)
        assert node.metadata.labels["kubetrain.io/node-pool"] == "a100-eu"

    status = jobs.wait_phase(name, "Running")
    assert status["replicaStatuses"]["worker"]["active"] == 2
    assert status["startTime"]

    for pod in pods:
        jobs.end_pod(pod.metadata.name, "Succeeded", 0)
    status = jobs.wait_phase(name, "Succeeded")
    assert status["completionTime"]
    assert status["restarts"] == 0
    succeeded = jobs.condition(name, "Succeeded")
    assert succeeded and succeeded["status"] == "True"
    reasons = {e.reason for e in jobs.events(name)}
    assert {"Running", "Succeeded"} <= reasons, reasons
    listing = cluster.kubectl("get", "tj", "-n", namespace).stdout
    assert "Succeeded" in listing and "pytorch" in listing


def test_reapplying_the_same_manifest_changes_nothing(jobs: Jobs, cluster: LocalCluster, namespace: str) -> None:
    path = str(EXAMPLES / "pytorch-ddp.yaml")
    cluster.kubectl("apply", "-n", namespace, "-f", path)
    jobs.wait_pods("pytorch-ddp", 2, phase="Running")
    generation = jobs.get("pytorch-ddp")["metadata"]["generation"]
    out = cluster.kubectl("apply", "-n", namespace, "-f", path).stdout
    assert "unchanged" in out
    assert jobs.get("pytorch-ddp")["metadata"]["generation"] == generation
    assert cluster.kubectl("diff", "-n", namespace, "-f", path, check=False).returncode == 0


def test_worker_failure_restarts_the_whole_group_until_backoff_limit(jobs: Jobs) -> None:
    name, pods = start_running(jobs, runPolicy={"backoffLimit": 1})
    first_uids = {p.metadata.uid for p in pods}
    jobs.end_pod(pods[1].metadata.name, "Failed", 137)

    def restarted() -> list[Any] | None:
        live = jobs.pods(name)
        ok = len(live) == 2 and all(p.metadata.labels["kubetrain.io/attempt"] == "1" for p in live)
        return live if ok else None

    new_pods = wait_for(restarted, what="a new attempt of both workers")
    assert not first_uids & {p.metadata.uid for p in new_pods}, "every worker is replaced, not just the failed one"
    assert jobs.status(name)["restarts"] == 1
    jobs.wait_phase(name, "Running")

    jobs.end_pod(new_pods[0].metadata.name, "Failed", 1)
    status = jobs.wait_phase(name, "Failed")
    failed = jobs.condition(name, "Failed")
    assert failed and failed["reason"] == "BackoffLimitExceeded", failed
    assert status["restarts"] == 1
    wait_for(lambda: not [p for p in jobs.pods(name) if p.status.phase == "Running"], what="running pods cleaned")


def test_deleted_pod_counts_as_a_failure_and_is_recovered(jobs: Jobs) -> None:
    name, pods = start_running(jobs)
    jobs.core.delete_namespaced_pod(pods[0].metadata.name, jobs.ns)
    wait_for(lambda: jobs.status(name).get("restarts") == 1, what="restarts == 1")
    new_pods = jobs.wait_pods(name, 2, phase="Running")
    assert all(p.metadata.labels["kubetrain.io/attempt"] == "1" for p in new_pods)
    jobs.wait_phase(name, "Running")


def test_operator_restart_mid_job_creates_no_duplicates(jobs: Jobs, operator: OperatorProcess) -> None:
    name, pods = start_running(jobs)
    uids = {p.metadata.uid for p in pods}
    operator.stop(kill=True)
    operator.start()
    jobs.end_pod(pods[0].metadata.name, "Succeeded", 0)
    jobs.end_pod(pods[1].metadata.name, "Succeeded", 0)
    jobs.wait_phase(name, "Succeeded")
    assert {p.metadata.uid for p in jobs.pods(name)} == uids
    assert jobs.status(name)["restarts"] == 0


def test_suspend_deletes_pods_and_resume_starts_again(jobs: Jobs) -> None:
    name, _ = start_running(jobs)
    jobs.patch_spec(name, {"runPolicy": {"suspend": True}})
    jobs.wait_phase(name, "Suspended")
    wait_for(lambda: not jobs.pods(name, include_terminating=True), what="pods deleted on suspend")
    assert jobs.exists(name)
    jobs.patch_spec(name, {"runPolicy": {"suspend": False}})
    jobs.wait_pods(name, 2, phase="Running")
    jobs.wait_phase(name, "Running")
    assert jobs.status(name)["restarts"] == 0, "suspension is not a failure"


def test_active_deadline_fails_the_job(jobs: Jobs) -> None:
    """Whether the test sees Running in between does not matter (3 s pass quickly on a loaded
    machine); the status shows the deadline counted from the start."""
    name = jobs.create(example("pytorch-ddp.yaml"), runPolicy={"activeDeadlineSeconds": 3})
    status = jobs.wait_phase(name, "Failed")
    failed = jobs.condition(name, "Failed")
    assert failed and failed["reason"] == "DeadlineExceeded", failed
    started, ended = (dt.datetime.fromisoformat(status[key]) for key in ("startTime", "completionTime"))
    assert ended - started >= dt.timedelta(seconds=3), status
    wait_for(lambda: not jobs.pods(name), what="pods deleted after the deadline")


def test_finished_job_is_deleted_after_ttl(jobs: Jobs) -> None:
    name, pods = start_running(jobs, runPolicy={"ttlSecondsAfterFinished": 2})
    watched_from = jobs.get(name)["metadata"]["resourceVersion"]
    for pod in pods:
        jobs.end_pod(pod.metadata.name, "Succeeded", 0)
    last = jobs.watch_until_deleted(name, watched_from)
    noticed = dt.datetime.now(dt.timezone.utc)
    assert last["status"]["phase"] == "Succeeded", last["status"]
    completed = dt.datetime.fromisoformat(last["status"]["completionTime"])
    assert noticed - completed >= dt.timedelta(seconds=2), "deleted before its TTL"


def test_deleting_the_job_cascades_to_pods_and_service(jobs: Jobs) -> None:
    name, _ = start_running(jobs)
    jobs.delete(name)
    wait_for(lambda: not jobs.pods(name, include_terminating=True), timeout=60, what="pods garbage-collected")
    wait_for(
        lambda: not jobs.core.list_namespaced_service(jobs.ns, label_selector=f"kubetrain.io/job-name={name}").items,
        timeout=60,
        what="service garbage-collected",
    )


def test_unknown_node_pool_fails_with_invalid_spec_and_no_pods(jobs: Jobs) -> None:
    name = jobs.create(example("pytorch-ddp.yaml"), nodePool="does-not-exist")
    jobs.wait_phase(name, "Failed")
    failed = jobs.condition(name, "Failed")
    assert failed and failed["reason"] == "InvalidSpec"
    assert "spec.nodePool" in failed["message"] and "a100-eu" in failed["message"]
    assert not jobs.pods(name, include_terminating=True)


def test_too_many_gpus_per_worker_fails_with_the_fix(jobs: Jobs) -> None:
    manifest = example("pytorch-ddp.yaml")
    manifest["spec"]["resources"]["gpus"] = 9
    name = jobs.create(manifest)
    jobs.wait_phase(name, "Failed")
    failed = jobs.condition(name, "Failed")
    assert failed and failed["reason"] == "InvalidSpec"
    assert "spec.resources.gpus" in failed["message"] and "8" in failed["message"]
    assert not jobs.pods(name, include_terminating=True)


def test_trainer_account_may_report_its_own_jobs_status_and_nothing_else(
    jobs: Jobs, cluster: LocalCluster, api: kubernetes.client.ApiClient, tmp_path: Path
) -> None:
    """Acting as the job's trainer ServiceAccount with a real token, as a compromised worker could."""
    name, _ = start_running(jobs)
    other = jobs.create({**example("pytorch-ddp.yaml"), "metadata": {"name": "other"}}, runPolicy={"suspend": True})
    account = trainer_access_name(name)
    kubeconfig = service_account_kubeconfig(cluster, api, jobs.ns, account, tmp_path / "trainer.kubeconfig")
    with kubernetes.config.new_client_from_config(config_file=str(kubeconfig)) as trainer:
        custom = kubernetes.client.CustomObjectsApi(trainer)
        report = {"status": {"progress": {"percent": 12.5}}}
        custom.patch_namespaced_custom_object_status(GROUP, VERSION, jobs.ns, PLURAL, name, report)
        custom.get_namespaced_custom_object_status(GROUP, VERSION, jobs.ns, PLURAL, name)
        refused = [
            lambda: custom.patch_namespaced_custom_object_status(GROUP, VERSION, jobs.ns, PLURAL, other, report),
            lambda: custom.get_namespaced_custom_object_status(GROUP, VERSION, jobs.ns, PLURAL, other),
            lambda: custom.patch_namespaced_custom_object(
                GROUP, VERSION, jobs.ns, PLURAL, name, {"spec": {"workers": 3}}
            ),
            lambda: custom.list_namespaced_custom_object(GROUP, VERSION, jobs.ns, PLURAL),
            lambda: kubernetes.client.CoreV1Api(trainer).list_namespaced_secret(jobs.ns),
            lambda: kubernetes.client.CoreV1Api(trainer).list_namespaced_pod(jobs.ns),
        ]
        for attempt in refused:
            with pytest.raises(kubernetes.client.exceptions.ApiException) as denied:
                attempt()
            assert denied.value.status == 403, denied.value.body
    assert jobs.status(name)["progress"]["percent"] == 12.5
    assert "progress" not in jobs.status(other)


CRD_NAME = "trainingjobs.kubetrain.io"
SPEC_RULES = "/spec/versions/0/schema/openAPIV3Schema/properties/spec/x-kubernetes-validations"


def _task_rule_index(cluster: LocalCluster) -> int:
    crd = json.loads(cluster.kubectl("get", "crd", CRD_NAME, "-o", "json").stdout)
    rules = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["x-kubernetes-validations"]
    return next(i for i, rule in enumerate(rules) if "has(self.task)" in rule["rule"])


def _task_rule_enforced(cluster: LocalCluster, namespace: str) -> bool:
    """Whether the API server refuses a job without task now (a server-side dry run stores nothing)."""
    probe = example("pytorch-ddp.yaml")
    _without_task(probe)
    probe["metadata"]["name"] = "task-rule-probe"
    result = cluster.kubectl(
        "create", "--dry-run=server", "-n", namespace, "-f", "-", input=yaml.safe_dump(probe), check=False
    )
    return "spec.task is required" in result.stderr


@contextlib.contextmanager
def crd_lagging_behind_the_operator(cluster: LocalCluster, crds: Path, namespace: str) -> Iterator[None]:
    """The installed CRD without its task-or-command rule, as a CRD older than the operator would
    be (Helm installs crds/ but never upgrades them); the repo's CRD is back in force afterwards."""
    index = _task_rule_index(cluster)
    patch = [{"op": "remove", "path": f"{SPEC_RULES}/{index}"}]
    cluster.kubectl("patch", "crd", CRD_NAME, "--type=json", "-p", json.dumps(patch))
    try:
        yield
    finally:
        cluster.kubectl(
            "apply", "--server-side", "--force-conflicts", "-f", str(crds / "kubetrain.io_trainingjobs.yaml")
        )
        wait_for(lambda: _task_rule_enforced(cluster, namespace), what="the repo's CRD rules in force again")


def test_spec_the_models_refuse_is_refused_at_admission_or_failed_before_any_pod(
    jobs: Jobs, cluster: LocalCluster, crds: Path, operator: OperatorProcess
) -> None:
    """A spec the API server's schema takes but the Python models refuse (here: a CRD older than
    the operator). With the webhooks registered, the `spec` webhook refuses it naming the rule;
    where it was written unchecked (webhooks not registered: an operator run without --webhook,
    or a registration removed), the reconcile fails it with InvalidSpec before any pod exists."""
    manifest = example("pytorch-ddp.yaml")
    _without_task(manifest)
    name = manifest["metadata"]["name"]
    with crd_lagging_behind_the_operator(cluster, crds, jobs.ns):
        refused = wait_for(lambda: _refused_by_the_spec_webhook(jobs, manifest), what="the spec webhook's refusal")
        assert "spec.task is required unless spec.command is set" in refused, refused
        cluster.kubectl("delete", "validatingwebhookconfiguration", WEBHOOK_CONFIGURATION)
        try:
            jobs.create(manifest)
        finally:
            operator.stop()
            operator.start()  # registers the webhooks again
        jobs.wait_phase(name, "Failed")
    failed = jobs.condition(name, "Failed")
    assert failed and failed["reason"] == "InvalidSpec", failed
    assert "spec.task is required unless spec.command is set" in failed["message"], failed
    assert not jobs.pods(name, include_terminating=True)
    # A pod that ever existed would have left the scheduler's event behind.
    assert not jobs.core.list_namespaced_event(jobs.ns, field_selector="involvedObject.kind=Pod").items
    assert not jobs.core.list_namespaced_service(jobs.ns, label_selector=f"kubetrain.io/job-name={name}").items


def _refused_by_the_spec_webhook(jobs: Jobs, manifest: dict[str, Any]) -> str | None:
    """The spec webhook's refusal, once the CRD without the rule is in force (until then the
    schema refuses the job itself)."""
    try:
        jobs.create(manifest)
    except kubernetes.client.exceptions.ApiException as exc:
        body = str(exc.body)
        return body if f"spec.{WEBHOOK_CONFIGURATION}" in body else None
    raise AssertionError("a job without task was admitted with the webhooks registered")


def _without_task(manifest: dict[str, Any]) -> None:
    del manifest["spec"]["task"]


def _gpus_without_pool(manifest: dict[str, Any]) -> None:
    del manifest["spec"]["nodePool"]


def _env(name: str) -> Callable[[dict[str, Any]], None]:
    def mutate(manifest: dict[str, Any]) -> None:
        manifest["spec"]["env"] = [{"name": "LOG_LEVEL", "value": "debug"}, {"name": name, "value": "x"}]

    return mutate


def _long_name(manifest: dict[str, Any]) -> None:
    manifest["metadata"]["name"] = "n" * 64


def _spec(**fields: Any) -> Callable[[dict[str, Any]], None]:
    return lambda manifest: manifest["spec"].update(fields)


# Each refusal docs/api.md promises from the API server itself: (change to the example, the field
# the server names, words of its message).
REFUSALS: dict[str, tuple[Callable[[dict[str, Any]], None], str, str]] = {
    "negative-workers": (_spec(workers=-1), "spec.workers", "should be greater than or equal to 1"),
    "unknown-runtime": (_spec(runtime="tensorflow"), "spec.runtime", 'Unsupported value: "tensorflow"'),
    "gpus-without-node-pool": (_gpus_without_pool, "spec", "spec.nodePool is required when spec.resources.gpus > 0"),
    "neither-task-nor-command": (_without_task, "spec", "spec.task is required unless spec.command is set"),
    "reserved-distributed-env": (_env("MASTER_ADDR"), "spec.env[1]", "are set by the operator"),
    "reserved-env-prefix": (_env("KUBETRAIN_TASK"), "spec.env[1]", "are set by the operator"),
    # A rule on the whole object: the server names no field ("<nil>"); its message names metadata.name.
    "name-over-63-characters": (_long_name, "<nil>", "metadata.name must be at most 63 characters"),
}


@pytest.mark.parametrize(("mutate", "field", "message"), REFUSALS.values(), ids=REFUSALS.keys())
def test_crd_validation_refuses_bad_specs(
    cluster: LocalCluster, namespace: str, operator: OperatorProcess, mutate: Callable[[dict[str, Any]], None],
    field: str, message: str,
) -> None:
    """With the operator's webhooks registered, as users have them (and as an earlier session on a
    reused cluster leaves them): the schema refuses before any validating webhook is asked."""
    manifest = example("pytorch-ddp.yaml")
    mutate(manifest)
    result = cluster.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(manifest), check=False)
    assert result.returncode != 0
    assert f"{field}: " in result.stderr and message in result.stderr, result.stderr
    assert not cluster.kubectl("get", "tj", "-n", namespace, "-o", "name").stdout, "nothing was stored"
