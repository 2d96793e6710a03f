"""The Helm chart: lint and template (default and full values), the values schema, the RBAC
against the README's table, and install / upgrade / uninstall on the real control plane, with the
operator run locally under the chart's ServiceAccount token to prove that RBAC is enough for a
job end to end (and `kubectl auth can-i` that it is not more)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import yaml
from kubernetes.client.exceptions import ApiException

from kubetrain.api.nodepools import load_catalogue
from kubetrain.devcluster.cluster import LocalCluster
from tests.helm import CHART, DATA, Helm, find, value_args
from tests.helpers import wait_for
from tests.jobs import GROUP, VERSION, Jobs, example
from tests.operator_process import WEBHOOK_CONFIGURATION, OperatorProcess
from tests.service_account import service_account_kubeconfig

pytestmark = pytest.mark.cluster

README = Path(__file__).resolve().parents[2] / "README.md"
FULL = DATA / "helm-values-full.yaml"
RELEASE = "kt"
FULLNAME = f"{RELEASE}-kubetrain"
# Chart arguments that only make sense inside the pod; the local operator gets its own.
POD_ONLY_FLAGS = ("--liveness-port", "--metrics-port", "--webhook-port", "--webhook-service", "--webhook-cert-dir",
                  "--node-pools", "--log-level")
Rule = tuple[str, str, str, tuple[str, ...]]  # API group, resource, verb, resourceNames


# -- rendering --------------------------------------------------------------------------------
def test_lint_passes_with_default_and_full_values() -> None:
    helm = Helm()
    for values in ((), (FULL,)):
        result = helm.run("lint", str(CHART), "--strict", *value_args(values, ()))
        assert "1 chart(s) linted, 0 chart(s) failed" in result.stdout, result.stdout


def test_default_values_render_a_cluster_wide_operator() -> None:
    objects = Helm().template()
    kinds = sorted({o["kind"] for o in objects})
    assert kinds == ["ClusterRole", "ClusterRoleBinding", "Deployment", "Secret", "Service", "ServiceAccount"]
    (deployment,) = find(objects, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["args"][:2] == ["operator", "run"]
    assert not any(a.startswith(("--namespace", "--peering", "--node-pools")) for a in container["args"])
    assert "--webhook-service=kubetrain/kt-kubetrain-webhook" in container["args"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]},
    }
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "healthz"}
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {
        "healthz": 8080, "http-metrics": 8081, "webhook": 9443,
    }
    (secret,) = find(objects, "Secret")
    assert set(secret["data"]) == {"ca.crt", "tls.crt", "tls.key"}
    assert not find(objects, "Role") and not find(objects, "ServiceMonitor")


def test_full_values_render_roles_peering_catalogue_and_service_monitor() -> None:
    objects = Helm().template(FULL)
    # Sorted: the order in which helm renders the objects is no promise of the chart.
    assert sorted(o["metadata"]["namespace"] for o in find(objects, "Role")) == ["team-a", "team-b"]
    assert sorted(o["metadata"]["namespace"] for o in find(objects, "KopfPeering")) == ["team-a", "team-b"]
    assert not find(objects, "ClusterKopfPeering") and not find(objects, "Secret")  # certSecret is given
    (monitor,) = find(objects, "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    assert monitor["spec"]["endpoints"] == [{"port": "http-metrics", "path": "/metrics", "interval": "15s"}]
    (config_map,) = find(objects, "ConfigMap")
    catalogue = load_catalogue(yaml.safe_load(config_map["data"]["node-pools.yaml"]))
    assert catalogue.names() == ["a100-eu", "cpu"] and catalogue.pools["a100-eu"].gpus_per_node == 8
    (deployment,) = find(objects, "Deployment")
    assert deployment["spec"]["replicas"] == 2
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    for expected in ("--namespace=team-a", "--namespace=team-b", "--peering=kt-kubetrain", "--log-format=text",
                     "--default-residency=deny-all", "--metrics-port=9102", "--webhook-port=10443",
                     "--default-image=registry.example.com/ml/kubetrain-trainer:0.1.0-rc1"):
        assert expected in args, (expected, args)
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes["webhook-certs"]["secret"]["secretName"] == "kubetrain-webhook-tls"


def test_values_breaking_the_schema_are_refused_naming_each_field() -> None:
    result = Helm().run("template", "kt", str(CHART), "--values", str(DATA / "helm-values-bad.yaml"), check=False)
    assert result.returncode != 0
    assert "values don't meet the specifications of the schema" in result.stderr
    assert "at '/logFormat': value must be one of 'json', 'text'" in result.stderr
    assert "additional properties 'replicaCount' not allowed" in result.stderr
    assert "missing property 'nodeSelector'" in result.stderr
    assert "at '/nodePools/a100-eu/gpusPerNode': minimum: got -1, want 0" in result.stderr


# -- RBAC against the README ------------------------------------------------------------------
def readme_rbac() -> list[dict[str, str]]:
    text = README.read_text()
    table = text[text.index("<!-- rbac:start -->"):text.index("<!-- rbac:end -->")]
    rows = [[cell.strip() for cell in line.strip().strip("|").split("|")] for line in table.splitlines()[3:]]
    keys = ("where", "when", "group", "resource", "verbs", "only", "why")
    return [dict(zip(keys, row)) for row in rows if len(row) == len(keys)]


def expected_rules(where: str, namespaces: list[str], webhook: bool, peering: bool) -> set[Rule]:
    conditions = {"always"}
    if webhook:
        conditions.add("webhook")
    if peering:
        conditions.add("peering, listed namespaces" if namespaces else "peering, all namespaces")
    rules = set()
    for row in readme_rbac():
        if row["where"] != where or row["when"] not in conditions:
            continue
        only: tuple[str, ...] = ()
        if row["only"] == "watched namespaces, when listed":
            only = tuple(namespaces)
        elif row["only"]:
            only = (row["only"],)
        rules |= {(row["group"], row["resource"], verb.strip(), only) for verb in row["verbs"].split(",")}
    return rules


def rendered_rules(role: dict[str, Any]) -> set[Rule]:
    return {
        (group, resource, verb, tuple(rule.get("resourceNames") or ()))
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


@pytest.mark.parametrize(
    "sets, namespaces, webhook, peering",
    [
        ((), [], True, False),
        (("webhook.enabled=false",), [], False, False),
        (("replicas=2",), [], True, True),
        (("watchNamespaces={team-a,team-b}", "replicas=3"), ["team-a", "team-b"], True, True),
    ],
    ids=["default", "no-webhook", "peering", "namespaces-peering"],
)
def test_rendered_rbac_is_exactly_the_readme_table(
    sets: tuple[str, ...], namespaces: list[str], webhook: bool, peering: bool
) -> None:
    objects = Helm().template(sets=sets)
    (cluster_role,) = find(objects, "ClusterRole")
    jobs = expected_rules("jobs", namespaces, webhook, peering)
    cluster = expected_rules("cluster", namespaces, webhook, peering)
    assert rendered_rules(cluster_role) == (cluster if namespaces else cluster | jobs)
    for namespace in namespaces:
        (role,) = find(objects, "Role", namespace=namespace)
        assert rendered_rules(role) == jobs
    assert len(find(objects, "Role")) == len(namespaces)
    for rule in (r for o in find(objects, "ClusterRole") + find(objects, "Role") for r in o["rules"]):
        assert "*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"]


# -- install, run under the chart's ServiceAccount, upgrade, uninstall -------------------------
class Release:
    """One installed release and the namespaces it serves."""

    def __init__(self, cluster: LocalCluster, api: kubernetes.client.ApiClient, tmp: Path) -> None:
        suffix = uuid.uuid4().hex[:5]
        self.cluster = cluster
        self.api = api
        self.tmp = tmp
        self.namespace = f"kubetrain-system-{suffix}"
        self.jobs_namespace = f"kubetrain-jobs-{suffix}"
        self.other_namespace = f"kubetrain-other-{suffix}"
        self.helm = Helm(cluster.kubeconfig)
        self.account = f"system:serviceaccount:{self.namespace}:{FULLNAME}"
        # The Deployment cannot run here (no image, KWOK nodes): it is kept off every node.
        self.base_values = tmp / "values.yaml"
        self.base_values.write_text(yaml.safe_dump({"nodeSelector": {"kubetrain.io/node-pool": "none"}}))

    def helm_args(self, *sets: str) -> list[str]:
        return [RELEASE, str(CHART), f"--namespace={self.namespace}", "--wait=false",
                *value_args((self.base_values,), sets)]

    def deployment_args(self) -> list[str]:
        deployment = kubernetes.client.AppsV1Api(self.api).read_namespaced_deployment(FULLNAME, self.namespace)
        args = list(deployment.spec.template.spec.containers[0].args)
        assert args[:2] == ["operator", "run"]
        return args[2:]

    def local_operator(self, name: str) -> OperatorProcess:
        """The operator with the Deployment's own arguments, as the chart's ServiceAccount;
        only what needs the pod (ports, mounted files, the in-cluster Service) is local."""
        args = [a for a in self.deployment_args() if not a.startswith(POD_ONLY_FLAGS)]
        catalogue = self.node_pools_file()
        if catalogue is not None:
            args.append(f"--node-pools={catalogue}")
        kubeconfig = service_account_kubeconfig(self.cluster, self.api, self.namespace, FULLNAME,
                                                self.tmp / f"{name}.kubeconfig")
        return OperatorProcess(kubeconfig, self.tmp / name / "operator.log", extra_args=args,
                               admin_kubeconfig=self.cluster.kubeconfig)

    def node_pools_file(self) -> Path | None:
        core = kubernetes.client.CoreV1Api(self.api)
        try:
            config_map = core.read_namespaced_config_map(f"{FULLNAME}-node-pools", self.namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        path = self.tmp / "node-pools.yaml"
        path.write_text(config_map.data["node-pools.yaml"])
        return path

    def can_i(self, verb: str, resource: str, namespace: str | None = None, subresource: str = "") -> bool:
        where = [f"--namespace={namespace}"] if namespace else []
        if subresource:
            where.append(f"--subresource={subresource}")
        result = self.cluster.kubectl("auth", "can-i", verb, resource, f"--as={self.account}", *where, check=False)
        assert result.stdout.strip() in ("yes", "no"), result.stderr
        return result.stdout.strip() == "yes"


@pytest.fixture
def release(
    cluster: LocalCluster, api: kubernetes.client.ApiClient, crds: Path, sole_operator: None, tmp_path: Path
) -> Iterator[Release]:
    """A release of its own per test (installed with the default values, uninstalled after), so
    that the tests pass in any order: two tests upgrade or uninstall it. Two releases cannot exist
    at once: both would own the ClusterRole of the same name."""
    rel = Release(cluster, api, tmp_path)
    core = kubernetes.client.CoreV1Api(api)
    for namespace in (rel.namespace, rel.jobs_namespace, rel.other_namespace):
        core.create_namespace({"metadata": {"name": namespace}})
    rel.helm.run("install", *rel.helm_args())
    try:
        yield rel
    finally:
        rel.helm.run("uninstall", RELEASE, f"--namespace={rel.namespace}", "--wait", check=False)
        for namespace in (rel.namespace, rel.jobs_namespace, rel.other_namespace):
            core.delete_namespace(namespace)


def run_job_to_success(jobs: Jobs, name: str, restart_once: bool) -> None:
    """Runs the example under `name`: tests of one release share its jobs namespace."""
    manifest = example("pytorch-ddp.yaml")
    manifest["metadata"]["name"] = name
    jobs.create(manifest)
    pods = jobs.wait_pods(name, 2, phase="Running")
    if restart_once:
        jobs.end_pod(pods[1].metadata.name, "Failed", 137)

        def second_attempt_running() -> list[Any] | None:
            live = jobs.pods(name, include_terminating=True)
            new = [p for p in live if p.metadata.labels["kubetrain.io/attempt"] == "1" and p.status.phase == "Running"]
            return new if len(live) == len(new) == 2 else None

        pods = wait_for(second_attempt_running, timeout=60, what="the restarted group running")
    for pod in pods:
        jobs.end_pod(pod.metadata.name, "Succeeded", 0)
    jobs.wait_phase(name, "Succeeded")


def metric(page: str, name: str, **labels: str) -> float:
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    pattern = re.escape(name) + (r"\{" + re.escape(wanted) + r"\}" if labels else "") + r" (\S+)"
    found = re.search(pattern, page)
    assert found, f"{name}{{{wanted}}} not in /metrics"
    return float(found.group(1))


def assert_no_permission_errors(operator: OperatorProcess) -> None:
    log = operator.log_path.read_text(errors="replace")
    for symptom in ("Forbidden", "Not enough permissions", "Not enough RBAC permissions"):
        assert symptom not in log, f"{symptom!r} in the operator log:\n{operator.log_tail()}"


def test_install_creates_everything_and_its_rbac_runs_a_job_end_to_end(
    release: Release, api: kubernetes.client.ApiClient
) -> None:
    cluster = release.cluster
    listed = cluster.kubectl("get", "deployment,serviceaccount,service,secret", "-n", release.namespace,
                             "-l", f"app.kubernetes.io/instance={RELEASE}", "-o", "name").stdout.split()
    assert sorted(listed) == sorted([
        f"deployment.apps/{FULLNAME}", f"serviceaccount/{FULLNAME}", f"service/{FULLNAME}-metrics",
        f"service/{FULLNAME}-webhook", f"secret/{FULLNAME}-webhook-cert",
    ])
    cluster.kubectl("get", f"clusterrole/{FULLNAME}", f"clusterrolebinding/{FULLNAME}")
    assert cluster.kubectl("get", "crd", "trainingjobs.kubetrain.io", "clusterkopfpeerings.kopf.dev").returncode == 0

    operator = release.local_operator("cluster-wide")
    operator.start()  # returns once the residency webhook it registered points at it
    try:
        jobs = Jobs(api, release.jobs_namespace)
        name = "cluster-wide"
        run_job_to_success(jobs, name, restart_once=True)
        status = jobs.status(name)
        assert status["restarts"] == 1 and status["completionTime"]
        assert {"Running", "Succeeded"} <= {e.reason for e in jobs.events(name)}
        page = operator.metrics()
        assert metric(page, "kubetrain_trainingjobs", phase="Succeeded") >= 1
        assert metric(page, "kubetrain_trainingjobs", phase="Running") == 0
        assert metric(page, "kubetrain_job_restarts_total", namespace=release.jobs_namespace) == 1
        assert metric(page, "kubetrain_reconcile_duration_seconds_count", outcome="ok") > 0
        assert "# TYPE kubetrain_api_errors_total counter" in page

        # The webhook it registered with the chart's rights judges jobs (reads policies, namespaces).
        policy = {
            "apiVersion": f"{GROUP}/{VERSION}", "kind": "DataResidencyPolicy",
            "metadata": {"name": f"{release.jobs_namespace}-us-only"},
            "spec": {"namespaces": [release.jobs_namespace], "allowedRegions": ["us-east-1"]},
        }
        custom = kubernetes.client.CustomObjectsApi(api)
        custom.create_cluster_custom_object(GROUP, VERSION, "dataresidencypolicies", policy)
        try:
            manifest = example("pytorch-ddp.yaml")
            manifest["metadata"]["name"] = "eu-pool"
            result = cluster.kubectl("apply", "-n", release.jobs_namespace, "-f", "-",
                                     input=yaml.safe_dump(manifest), check=False)
            assert result.returncode != 0
            assert f'admission webhook "residency.{WEBHOOK_CONFIGURATION}" denied the request' in result.stderr
        finally:
            custom.delete_cluster_custom_object(GROUP, VERSION, "dataresidencypolicies", policy["metadata"]["name"])
        assert_no_permission_errors(operator)
    finally:
        operator.stop()


def test_service_account_can_do_nothing_beyond_the_table(release: Release) -> None:
    ns = release.jobs_namespace
    for verb, resource in (("create", "pods"), ("delete", "pods"), ("create", "roles.rbac.authorization.k8s.io"),
                           ("create", "events")):
        assert release.can_i(verb, resource, ns), (verb, resource)
    assert release.can_i("patch", "trainingjobs.kubetrain.io", ns, subresource="status")
    forbidden = [
        ("get", "secrets"), ("list", "secrets"), ("watch", "secrets"), ("get", "configmaps"),
        ("update", "trainingjobs.kubetrain.io"), ("patch", "trainingjobs.kubetrain.io"),
        ("create", "deployments.apps"),
        ("patch", "pods"), ("bind", "clusterroles.rbac.authorization.k8s.io"),
        ("escalate", "roles.rbac.authorization.k8s.io"), ("create", "clusterrolebindings.rbac.authorization.k8s.io"),
        ("list", "nodes"), ("create", "namespaces"), ("delete", "customresourcedefinitions.apiextensions.k8s.io"),
        ("list", "customresourcedefinitions.apiextensions.k8s.io"), ("impersonate", "users"), ("*", "*"),
        ("delete", "validatingwebhookconfigurations.admissionregistration.k8s.io"),
        ("patch", "dataresidencypolicies.kubetrain.io"),
    ]
    granted = [(verb, resource) for verb, resource in forbidden if release.can_i(verb, resource, ns)]
    assert granted == []
    assert not release.can_i("create", "pods", ns, subresource="exec")
    assert not release.can_i("get", "pods", ns, subresource="log")
    assert not release.can_i("create", "serviceaccounts", ns, subresource="token")
    assert not release.can_i("patch", "validatingwebhookconfigurations/some-other-webhook")


def test_upgrade_to_listed_namespaces_with_replicas_applies_roles_and_peering(
    release: Release, api: kubernetes.client.ApiClient
) -> None:
    cluster = release.cluster
    secret_before = cluster.kubectl("get", "secret", f"{FULLNAME}-webhook-cert", "-n", release.namespace,
                                    "-o", "jsonpath={.data.ca\\.crt}").stdout
    release.helm.run("upgrade", *release.helm_args(f"watchNamespaces={{{release.jobs_namespace}}}", "replicas=2"))

    args = release.deployment_args()
    assert f"--namespace={release.jobs_namespace}" in args and f"--peering={FULLNAME}" in args
    cluster.kubectl("get", f"role/{FULLNAME}", f"rolebinding/{FULLNAME}", f"kopfpeering/{FULLNAME}",
                    "-n", release.jobs_namespace)
    assert cluster.kubectl("get", "secret", f"{FULLNAME}-webhook-cert", "-n", release.namespace,
                           "-o", "jsonpath={.data.ca\\.crt}").stdout == secret_before, "webhook CA kept"
    # Namespaces that are not watched are out of reach now.
    assert not release.can_i("create", "pods", release.other_namespace)
    assert not release.can_i("get", f"namespaces/{release.other_namespace}")
    assert release.can_i("get", f"namespaces/{release.jobs_namespace}")
    assert release.can_i("create", "pods", release.jobs_namespace)

    operator = release.local_operator("namespaced")
    operator.start()
    try:
        run_job_to_success(Jobs(api, release.jobs_namespace), "namespaced", restart_once=False)
        peering = kubernetes.client.CustomObjectsApi(api).get_namespaced_custom_object(
            "kopf.dev", "v1", release.jobs_namespace, "kopfpeerings", FULLNAME)
        assert peering.get("status"), "the operator joined the peering"
        assert_no_permission_errors(operator)
    finally:
        operator.stop()


def test_upgrade_rolls_the_operator_when_the_node_pool_catalogue_changes(release: Release) -> None:
    """The operator reads its catalogue (a ConfigMap) once at start, so a changed catalogue must
    change the pod template (a new ReplicaSet), and an unchanged one must not."""
    apps = kubernetes.client.AppsV1Api(release.api)
    pools = yaml.safe_load(FULL.read_text())["nodePools"]

    def upgrade_with(gpus_per_node: int) -> set[str]:
        """The pod-template hashes of the operator's ReplicaSets once the Deployment has seen the upgrade."""
        values = release.tmp / f"pools-{gpus_per_node}.yaml"
        a100 = {**pools["a100-eu"], "gpusPerNode": gpus_per_node}
        values.write_text(yaml.safe_dump({"nodePools": {**pools, "a100-eu": a100}}))
        release.helm.run("upgrade", *release.helm_args(), f"--values={values}")

        def observed() -> bool:
            deployment = apps.read_namespaced_deployment(FULLNAME, release.namespace)
            return deployment.status.observed_generation == deployment.metadata.generation

        wait_for(observed, what="the Deployment controller to see the upgrade")
        replica_sets = apps.list_namespaced_replica_set(
            release.namespace, label_selector=f"app.kubernetes.io/instance={RELEASE}").items
        return {rs.metadata.labels["pod-template-hash"] for rs in replica_sets}

    first = upgrade_with(8)
    assert upgrade_with(8) == first, "the same catalogue again rolls nothing"
    rolled = upgrade_with(4)
    assert first < rolled and len(rolled) == len(first) + 1, "a changed catalogue rolls the operator"


def test_uninstall_removes_everything_but_the_crds(release: Release) -> None:
    cluster = release.cluster
    release.helm.run("uninstall", RELEASE, f"--namespace={release.namespace}", "--wait")
    left = cluster.kubectl("get", "all,serviceaccount,secret,configmap,role,rolebinding,kopfpeering", "-A",
                           "-l", f"app.kubernetes.io/instance={RELEASE}", "-o", "name").stdout.split()
    assert left == []
    for cluster_scoped in (f"clusterrole/{FULLNAME}", f"clusterrolebinding/{FULLNAME}"):
        assert cluster.kubectl("get", cluster_scoped, check=False).returncode != 0, cluster_scoped
    cluster.kubectl("get", "crd", "trainingjobs.kubetrain.io", "dataresidencypolicies.kubetrain.io",
                    "kopfpeerings.kopf.dev", "clusterkopfpeerings.kopf.dev")
