"""The Helm chart: lint and template (default and full values), the values schema, the RBAC
against the table in docs/install.md, and install / upgrade / uninstall on the real control plane, with the
operator run locally under the chart's ServiceAccount token to prove that RBAC is enough for a
job end to end (and `kubectl auth can-i` that it is not more)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import yaml
from kubernetes.client.exceptions import ApiException

from kubetrain.api.nodepools import load_catalogue
from kubetrain.devcluster.binaries import Versions
from kubetrain.devcluster.cluster import LocalCluster
from tests.builders import example
from tests.helm import CHART, DATA, Helm, find, value_args
from tests.helpers import wait_for
from tests.jobs import GROUP, VERSION, Jobs
from tests.operator_process import WEBHOOK_CONFIGURATION, OperatorProcess, metric
from tests.service_account import service_account_kubeconfig

pytestmark = pytest.mark.cluster

INSTALL_DOC = Path(__file__).resolve().parents[2] / "docs" / "install.md"
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
    assert kinds == ["ClusterRole", "ClusterRoleBinding", "Deployment", "Role", "RoleBinding", "Secret", "Service",
                     "ServiceAccount"]
    (deployment,) = find(objects, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["args"][:2] == ["operator", "run"]
    assert not any(a.startswith(("--namespace", "--node-pools")) for a in container["args"])
    # Leader election with one replica too: a rolling update never has two reconcilers.
    for expected in (
        "--leader-election",
        "--leader-election-namespace=kubetrain",
        "--leader-election-lease=kt-kubetrain",
        "--leader-election-lease-duration=15",
        "--leader-election-renew-deadline=10",
        "--leader-election-retry-period=2",
    ):
        assert expected in container["args"], (expected, container["args"])
    (identity,) = container["env"]
    assert identity == {"name": "KUBETRAIN_LEADER_ELECTION_IDENTITY",
                        "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}
    assert "affinity" not in pod and not find(objects, "PodDisruptionBudget"), "one replica: nothing to spread"
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
    assert [r["metadata"]["name"] for r in find(objects, "Role")] == ["kt-kubetrain-leader-election"]
    assert not find(objects, "ServiceMonitor")


def test_full_values_render_roles_disruption_budget_catalogue_service_monitor_and_dashboard() -> None:
    objects = Helm().template(FULL)
    # Sorted: the order in which helm renders the objects is no promise of the chart.
    assert sorted(o["metadata"]["namespace"] for o in find(objects, "Role")) == ["kubetrain", "team-a", "team-b"]
    assert not find(objects, "Secret")  # certSecret is given
    (budget,) = find(objects, "PodDisruptionBudget")
    assert budget["spec"] == {
        "minAvailable": 1,
        "selector": {
            "matchLabels": {
                "app.kubernetes.io/name": "kubetrain",
                "app.kubernetes.io/instance": "kt",
                "app.kubernetes.io/component": "operator",
            }
        },
    }
    (monitor,) = find(objects, "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    assert monitor["spec"]["endpoints"] == [{"port": "http-metrics", "path": "/metrics", "interval": "15s"}]
    (dashboard,) = find(objects, "ConfigMap", f"{FULLNAME}-dashboard", namespace="monitoring")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert dashboard["metadata"]["annotations"] == {"grafana_folder": "Training"}
    shipped = json.loads((CHART / "dashboards" / "kubetrain.json").read_text())
    assert json.loads(dashboard["data"]["kubetrain.json"]) == shipped
    (config_map,) = find(objects, "ConfigMap", f"{FULLNAME}-node-pools")
    catalogue = load_catalogue(yaml.safe_load(config_map["data"]["node-pools.yaml"]))
    assert catalogue.names() == ["a100-eu", "cpu"] and catalogue.pools["a100-eu"].gpus_per_node == 8
    (deployment,) = find(objects, "Deployment")
    assert deployment["spec"]["replicas"] == 2
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    for expected in ("--namespace=team-a", "--namespace=team-b", "--leader-election", "--log-format=text",
                     "--leader-election-lease-duration=20", "--leader-election-renew-deadline=12",
                     "--default-residency=deny-all", "--gang-scheduling=off", "--metrics-port=9102",
                     "--webhook-port=10443",
                     "--default-image=registry.example.com/ml/kubetrain-trainer:0.1.0-rc1"):
        assert expected in args, (expected, args)
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes["webhook-certs"]["secret"]["secretName"] == "kubetrain-webhook-tls"
    # The values' own affinity wins over podAntiAffinity.
    assert deployment["spec"]["template"]["spec"]["affinity"] == yaml.safe_load(FULL.read_text())["affinity"]


@pytest.mark.parametrize(("mode", "key"), [("soft", "preferredDuringSchedulingIgnoredDuringExecution"),
                                           ("hard", "requiredDuringSchedulingIgnoredDuringExecution")])
def test_replicas_spread_over_nodes(mode: str, key: str) -> None:
    (deployment,) = find(Helm().template(sets=("replicas=2", f"podAntiAffinity={mode}")), "Deployment")
    anti = deployment["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]
    (term,) = anti[key]
    term = term.get("podAffinityTerm", term)
    assert term["topologyKey"] == "kubernetes.io/hostname"
    assert term["labelSelector"]["matchLabels"]["app.kubernetes.io/instance"] == "kt"
    (none,) = find(Helm().template(sets=("replicas=2", "podAntiAffinity=none")), "Deployment")
    assert "affinity" not in none["spec"]["template"]["spec"]


def test_replicas_without_leader_election_are_refused() -> None:
    result = Helm().run("template", "kt", str(CHART), f"--kube-version={Versions.pinned().kubernetes}",
                        "--set=replicas=2", "--set=leaderElection.enabled=false", check=False)
    assert result.returncode != 0
    assert (
        "replicas > 1 needs leaderElection.enabled=true: without it every replica reconciles every job" in result.stderr
    )
    (deployment,) = find(Helm().template(sets=("leaderElection.enabled=false",)), "Deployment")
    assert not any(
        a.startswith("--leader-election") for a in deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    )


def test_values_breaking_the_schema_are_refused_naming_each_field() -> None:
    result = Helm().run("template", "kt", str(CHART), "--values", str(DATA / "helm-values-bad.yaml"), check=False)
    assert result.returncode != 0
    assert "values don't meet the specifications of the schema" in result.stderr
    assert "at '/logFormat': value must be one of 'json', 'text'" in result.stderr
    assert "additional properties 'replicaCount' not allowed" in result.stderr
    assert "missing property 'nodeSelector'" in result.stderr
    assert "at '/nodePools/a100-eu/gpusPerNode': minimum: got -1, want 0" in result.stderr


# -- RBAC against docs/install.md -------------------------------------------------------------
def documented_rbac() -> list[dict[str, str]]:
    text = INSTALL_DOC.read_text()
    table = text[text.index("<!-- rbac:start -->"):text.index("<!-- rbac:end -->")]
    rows = [[cell.strip() for cell in line.strip().strip("|").split("|")] for line in table.splitlines()[3:]]
    keys = ("where", "when", "group", "resource", "verbs", "only", "why")
    return [dict(zip(keys, row)) for row in rows if len(row) == len(keys)]


def expected_rules(where: str, namespaces: list[str], webhook: bool, leader_election: bool) -> set[Rule]:
    conditions = {"always"}
    if webhook:
        conditions.add("webhook")
    if leader_election:
        conditions.add("leader election")
    rules = set()
    for row in documented_rbac():
        if row["where"] != where or row["when"] not in conditions:
            continue
        only: tuple[str, ...] = ()
        if row["only"] == "watched namespaces, when listed":
            only = tuple(namespaces)
        elif row["only"] == "the release's Lease":
            only = (FULLNAME,)
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
    "sets, namespaces, webhook, leader_election",
    [
        ((), [], True, True),
        (("webhook.enabled=false", "leaderElection.enabled=false"), [], False, False),
        (("replicas=2",), [], True, True),
        (("watchNamespaces={team-a,team-b}", "replicas=3"), ["team-a", "team-b"], True, True),
    ],
    ids=["default", "no-webhook-no-election", "replicas", "namespaces-replicas"],
)
def test_rendered_rbac_is_exactly_the_documented_table(
    sets: tuple[str, ...], namespaces: list[str], webhook: bool, leader_election: bool
) -> None:
    objects = Helm().template(sets=sets)
    (cluster_role,) = find(objects, "ClusterRole", name=FULLNAME)
    jobs = expected_rules("jobs", namespaces, webhook, leader_election)
    cluster = expected_rules("cluster", namespaces, webhook, leader_election)
    release = expected_rules("release", namespaces, webhook, leader_election)
    assert rendered_rules(cluster_role) == (cluster if namespaces else cluster | jobs)
    election_roles = find(objects, "Role", name=f"{FULLNAME}-leader-election", namespace="kubetrain")
    assert [rendered_rules(role) for role in election_roles] == ([release] if leader_election else [])
    for namespace in namespaces:
        (role,) = find(objects, "Role", namespace=namespace)
        assert rendered_rules(role) == jobs
    assert len(find(objects, "Role")) == len(namespaces) + len(election_roles)
    for rule in (r for o in find(objects, "ClusterRole") + find(objects, "Role") for r in o["rules"]):
        assert "*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"]


USER_ROLES = ("view", "edit", "admin")
AGGREGATE = "rbac.authorization.k8s.io/aggregate-to-"


def test_user_roles_aggregate_into_view_edit_and_admin() -> None:
    objects = Helm().template()
    roles = {role: find(objects, "ClusterRole", name=f"{FULLNAME}-{role}")[0] for role in USER_ROLES}
    # Each role's rights reach its built-in role and every larger one (view < edit < admin).
    for index, role in enumerate(USER_ROLES):
        labels = roles[role]["metadata"]["labels"]
        assert {k for k in labels if k.startswith(AGGREGATE)} == {AGGREGATE + r for r in USER_ROLES[index:]}
    [read] = roles["view"]["rules"]
    assert set(read["verbs"]) == {"get", "list", "watch"}
    kinds = {"trainingjobs", "trainingschedules", "models", "modelversions", "dataresidencypolicies",
             "budgetpolicies"}
    assert kinds <= set(read["resources"])
    [write] = roles["edit"]["rules"]
    assert set(write["resources"]) == {"trainingjobs", "trainingschedules", "trainingsweeps", "models"}
    assert not any(r.endswith("/status") for r in write["resources"])


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
    # The operator has seen them run (its Running Event) before the test ends them.
    jobs.wait_phase(name, "Running")
    if restart_once:
        jobs.end_pod(pods[1].metadata.name, "Failed", 137)

        def second_attempt_running() -> list[Any] | None:
            live = jobs.pods(name, include_terminating=True)
            new = [p for p in live if p.metadata.labels["kubetrain.io/attempt"] == "1" and p.status.phase == "Running"]
            return new if len(live) == len(new) == 2 else None

        pods = wait_for(second_attempt_running, timeout=60, what="the restarted group running")
        jobs.wait_phase(name, "Running")
    for pod in pods:
        jobs.end_pod(pod.metadata.name, "Succeeded", 0)
    jobs.wait_phase(name, "Succeeded")


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
    cluster.kubectl("get", f"role/{FULLNAME}-leader-election", f"rolebinding/{FULLNAME}-leader-election",
                    "-n", release.namespace)
    cluster.kubectl("get", "crd", "trainingjobs.kubetrain.io")

    operator = release.local_operator("cluster-wide")
    operator.start()  # returns once the residency webhook it registered points at it
    try:
        jobs = Jobs(api, release.jobs_namespace)
        name = "cluster-wide"
        run_job_to_success(jobs, name, restart_once=True)
        status = jobs.status(name)
        assert status["restarts"] == 1 and status["completionTime"]
        jobs.wait_events(name, "Running", "Succeeded")
        page = operator.metrics()
        assert metric(page, "kubetrain_trainingjobs", namespace=release.jobs_namespace, phase="Succeeded") >= 1
        assert metric(page, "kubetrain_trainingjobs", namespace=release.jobs_namespace, phase="Running") == 0
        assert metric(page, "kubetrain_job_restarts_total", namespace=release.jobs_namespace) == 1
        assert metric(page, "kubetrain_reconcile_duration_seconds_count", outcome="ok") > 0
        assert metric(page, "kubetrain_leader") == 1
        assert "# TYPE kubetrain_api_errors_total counter" in page
        lease = kubernetes.client.CoordinationV1Api(api).read_namespaced_lease(FULLNAME, release.namespace)
        assert lease.spec.holder_identity and lease.spec.lease_duration_seconds == 15

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


def test_namespace_viewers_editors_and_admins_get_the_kubetrain_kinds(
    release: Release, api: kubernetes.client.ApiClient
) -> None:
    ns = release.jobs_namespace
    rbac = kubernetes.client.RbacAuthorizationV1Api(api)
    for role in USER_ROLES:
        rbac.create_namespaced_role_binding(ns, {
            "metadata": {"name": f"{role}-user"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": f"{role}-user"}],
        })

    def can(user: str, verb: str, resource: str, subresource: str = "") -> bool:
        extra = [f"--subresource={subresource}"] if subresource else []
        result = release.cluster.kubectl("auth", "can-i", verb, f"{resource}.kubetrain.io", f"--as={user}",
                                         f"--namespace={ns}", *extra, check=False)
        assert result.stdout.strip() in ("yes", "no"), result.stderr
        return result.stdout.strip() == "yes"

    # The clusterrole-aggregation controller fills the built-in roles shortly after install.
    wait_for(lambda: can("view-user", "list", "modelversions"), timeout=30, what="aggregated view role")
    for kind in ("trainingjobs", "trainingschedules", "models", "modelversions"):
        for verb in ("get", "list", "watch"):
            assert all(can(f"{role}-user", verb, kind) for role in USER_ROLES), (verb, kind)
        assert not can("nobody", "get", kind)
        assert not can("view-user", "create", kind) and not can("view-user", "delete", kind)
    assert can("view-user", "get", "trainingjobs", "status")
    for kind in ("trainingjobs", "trainingschedules", "models"):
        for verb in ("create", "update", "patch", "delete"):
            assert can("edit-user", verb, kind) and can("admin-user", verb, kind), (verb, kind)
    # Status is the operator's; ModelVersions are its records: editors write neither, admins may delete records.
    for role in ("edit-user", "admin-user"):
        assert not can(role, "patch", "trainingjobs", "status")
        assert not can(role, "create", "modelversions") and not can(role, "update", "modelversions")
    assert not can("edit-user", "delete", "modelversions") and can("admin-user", "delete", "modelversions")
    # A namespace editor can really create a TrainingJob (suspended: no pods needed here).
    manifest = example("pytorch-ddp.yaml")
    manifest["metadata"] = {"name": "by-an-editor", "namespace": ns}
    manifest["spec"]["runPolicy"] = {"suspend": True}
    operator = release.local_operator("user-roles")  # serves the admission webhooks
    operator.start()
    try:
        result = release.cluster.kubectl("create", "-f", "-", "--as=edit-user", input=yaml.safe_dump(manifest),
                                         check=False)
        assert result.returncode == 0, result.stderr
        assert release.cluster.kubectl("get", "tj", "by-an-editor", "-n", ns, "--as=view-user").returncode == 0
    finally:
        operator.stop()


def test_upgrade_to_listed_namespaces_with_two_replicas_one_leads_and_the_other_takes_over(
    release: Release, api: kubernetes.client.ApiClient
) -> None:
    cluster = release.cluster
    secret_before = cluster.kubectl("get", "secret", f"{FULLNAME}-webhook-cert", "-n", release.namespace,
                                    "-o", "jsonpath={.data.ca\\.crt}").stdout
    release.helm.run("upgrade", *release.helm_args(f"watchNamespaces={{{release.jobs_namespace}}}", "replicas=2"))

    args = release.deployment_args()
    assert f"--namespace={release.jobs_namespace}" in args and "--leader-election" in args
    cluster.kubectl("get", f"role/{FULLNAME}", f"rolebinding/{FULLNAME}", "-n", release.jobs_namespace)
    cluster.kubectl("get", f"poddisruptionbudget/{FULLNAME}", "-n", release.namespace)
    assert cluster.kubectl("get", "secret", f"{FULLNAME}-webhook-cert", "-n", release.namespace,
                           "-o", "jsonpath={.data.ca\\.crt}").stdout == secret_before, "webhook CA kept"
    # Namespaces that are not watched are out of reach now.
    assert not release.can_i("create", "pods", release.other_namespace)
    assert not release.can_i("get", f"namespaces/{release.other_namespace}")
    assert release.can_i("get", f"namespaces/{release.jobs_namespace}")
    assert release.can_i("create", "pods", release.jobs_namespace)
    # The Lease: the release's own, in its namespace, and no other.
    assert release.can_i("update", f"leases.coordination.k8s.io/{FULLNAME}", release.namespace)
    assert not release.can_i("update", "leases.coordination.k8s.io/kube-scheduler", release.namespace)
    assert not release.can_i("get", f"leases.coordination.k8s.io/{FULLNAME}", release.jobs_namespace)

    # Two replicas as the Deployment runs them: the first takes the Lease, the second stands by
    # (and, registered last, answers admission for both).
    first, second = release.local_operator("replica-a"), release.local_operator("replica-b")
    first.start()
    wait_for(first.leading, timeout=30, what="the first replica to lead")
    second.start()
    try:
        jobs = Jobs(api, release.jobs_namespace)
        run_job_to_success(jobs, "namespaced", restart_once=False)
        assert not second.leading() and second.reconciles() == 0

        first.stop(kill=True)
        wait_for(second.leading, timeout=30, what="the standby to take over")
        run_job_to_success(jobs, "after-failover", restart_once=True)
        assert jobs.status("after-failover")["restarts"] == 1
        for replica in (first, second):
            assert_no_permission_errors(replica)
    finally:
        first.stop()
        second.stop()


def test_an_upgrade_renews_the_generated_certificate_in_its_last_year(release: Release) -> None:
    cluster = release.cluster
    secret = f"{FULLNAME}-webhook-cert"

    def read(path: str) -> str:
        return cluster.kubectl("get", "secret", secret, "-n", release.namespace, "-o", f"jsonpath={path}").stdout

    not_after = int(read("{.metadata.annotations.kubetrain\\.io/not-after}"))
    assert not_after - time.time() > 9 * 365 * 86400, "ten years from install"
    ca_before = read("{.data.ca\\.crt}")
    # Half a year left, as nine and a half years after install.
    soon = str(int(time.time()) + 180 * 86400)
    cluster.kubectl("annotate", "secret", secret, "-n", release.namespace, f"kubetrain.io/not-after={soon}",
                    "--overwrite")
    release.helm.run("upgrade", *release.helm_args(), "--reuse-values")
    assert read("{.data.ca\\.crt}") != ca_before, "renewed"
    assert int(read("{.metadata.annotations.kubetrain\\.io/not-after}")) - time.time() > 9 * 365 * 86400


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
    left = cluster.kubectl("get", "all,serviceaccount,secret,configmap,role,rolebinding,poddisruptionbudget", "-A",
                           "-l", f"app.kubernetes.io/instance={RELEASE}", "-o", "name").stdout.split()
    assert left == []
    for cluster_scoped in (f"clusterrole/{FULLNAME}", f"clusterrolebinding/{FULLNAME}",
                           *(f"clusterrole/{FULLNAME}-{role}" for role in USER_ROLES)):
        assert cluster.kubectl("get", cluster_scoped, check=False).returncode != 0, cluster_scoped
    cluster.kubectl("get", "crd", "trainingjobs.kubetrain.io", "dataresidencypolicies.kubetrain.io")
