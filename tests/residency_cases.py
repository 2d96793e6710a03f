"""The residency bypass table, shared by the pure test (tests/unit) and the one through the real
API server and webhook (tests/integration): each case is one trick to run, read or write outside
an EU-only policy, and every one must be refused."""

from __future__ import annotations

from typing import Any

POLICY_NAME = "eu-only"
US_CLAIM, US_CLASS = "us-claim", "us-ssd"
EU_CLAIM, EU_CLASS = "eu-claim", "eu-ssd"


def eu_policy(name: str, namespaces: list[str], enforcement: str = "Enforce") -> dict[str, Any]:
    return {
        "apiVersion": "kubetrain.io/v1alpha1",
        "kind": "DataResidencyPolicy",
        "metadata": {"name": name},
        "spec": {
            "namespaces": namespaces,
            "enforcement": enforcement,
            "allowedRegions": ["eu-west-1"],
            "allowedNodePools": ["a100-eu", "cpu", "local"],
            "allowedData": [
                {"scheme": "s3", "bucket": "eu-*", "prefix": "datasets"},
                {"scheme": "pvc", "storageClasses": [EU_CLASS]},
            ],
            "allowedOutputs": [{"scheme": "s3", "bucket": "eu-models"}],
        },
    }


US = "s3://us-bucket/datasets/train.csv"
US_ENDPOINT = "https://s3.us-east-1.amazonaws.com"


def _uri(uri: str) -> dict[str, Any]:
    return {"dataset": {"uri": uri}}


def _template(spec: dict[str, Any]) -> dict[str, Any]:
    return {"podTemplate": {"spec": spec}}


def _affinity(operator: str, values: list[str] | None) -> dict[str, Any]:
    expression: dict[str, Any] = {"key": "topology.kubernetes.io/region", "operator": operator}
    if values is not None:
        expression["values"] = values
    term = {"matchExpressions": [expression]}
    return _template({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [term]}}}})


def _trainer_env(name: str, value: str) -> dict[str, Any]:
    return _template({"containers": [{"name": "trainer", "env": [{"name": name, "value": value}]}]})


def _extra_env(value: str) -> dict[str, Any]:
    return {"env": [{"name": "EXTRA_DATA", "value": value}]}


def _args(*args: str) -> dict[str, Any]:
    return {"command": ["python", "-m", "kubetrain_trainer"], "args": ["--data", *args]}


def _trainer(**container: Any) -> dict[str, Any]:
    return _template({"containers": [{"name": "trainer", **container}]})


def _pieces(*args: str) -> dict[str, Any]:
    """A URI in two harmless-looking variables, joined by the kubelet's $(VAR) expansion."""
    return {**_args(*args), "env": [{"name": "P", "value": "s3:"}, {"name": "R", "value": "//us-bucket/datasets/x"}]}


def _value_from(name: str, source: dict[str, Any], **container: Any) -> dict[str, Any]:
    return _trainer(env=[{"name": name, "valueFrom": source}], **container)


CONFIG_MAP_KEY = {"configMapKeyRef": {"name": "settings", "key": "data"}}
SECRET_KEY = {"secretKeyRef": {"name": "creds", "key": "token"}}
US_SPILL = '{"type":"smart_open","params":{"uri":"' + US + '"}}'


def _ray(params: dict[str, str], **spec: Any) -> dict[str, Any]:
    return {"runtime": "ray", "ray": {"rayStartParams": params}, **spec}


def _mount(path: str) -> dict[str, Any]:
    return {"podTemplate": {"spec": {"volumes": [{"name": "c", "configMap": {"name": "aws"}}], "containers": [
        {"name": "trainer", "volumeMounts": [{"name": "c", "mountPath": path}]}]}}}


def _item_volume(volume: dict[str, Any]) -> dict[str, Any]:
    return _template({"volumes": [{"name": "c", **volume}]})


DOWNWARD_ITEM = {"path": ".aws/config", "fieldRef": {"fieldPath": "metadata.annotations['aws']"}}
SYNC_IMAGE = "amazon/aws-cli"


def _exec(*command: str) -> dict[str, Any]:
    return {"exec": {"command": list(command)}}


NO_POOL = {"nodePool": None, "resources": {"cpu": "1", "memory": "1Gi", "gpus": 0}}

# (id, spec overrides merged into tests.builders' EU job: JobBuilder.eu(...).merge(**overrides); None removes a key)
CASES: list[tuple[str, dict[str, Any]]] = [
    ("us-bucket", _uri(US)),
    ("dotdot-traversal", _uri("s3://eu-data/datasets/../../us-bucket/x.csv")),
    ("encoded-dotdot", _uri("s3://eu-data/datasets/%2e%2e/%2E%2E/us/x.csv")),
    ("double-encoded-dotdot", _uri("s3://eu-data/datasets/%252e%252e/us/x.csv")),
    ("single-dot-segment", _uri("s3://eu-data/./datasets/x.csv")),
    ("double-slash", _uri("s3://eu-data//datasets/x.csv")),
    ("backslash-traversal", _uri("s3://eu-data/datasets\\..\\..\\us/x.csv")),
    ("mixed-case-scheme", _uri("S3://us-bucket/datasets/x.csv")),
    ("mixed-case-bucket", _uri("s3://US-Bucket/datasets/x.csv")),
    ("trailing-dot-bucket", _uri("s3://eu-data./datasets/x.csv")),
    ("trailing-dot-segment", _uri("s3://eu-data/datasets./x.csv")),
    ("userinfo", _uri("s3://eu-data@us-bucket/datasets/x.csv")),
    ("port", _uri("s3://eu-data:443/datasets/x.csv")),
    ("query-string", _uri("s3://us-bucket/datasets/x.csv?bucket=eu-data")),
    ("fragment", _uri("s3://us-bucket/datasets/x.csv#eu-data")),
    ("url-encoded-bucket", _uri("s3://us%2Dbucket/datasets/x.csv")),
    ("encoded-slash-in-bucket", _uri("s3://eu-data%2F..%2Fus-bucket/datasets/x.csv")),
    ("fullwidth-dots", _uri("s3://eu-data/datasets/\uff0e\uff0e/x.csv")),
    ("cyrillic-lookalike-bucket", _uri("s3://eu-d\u0430ta/datasets/x.csv")),
    ("prefix-sibling", _uri("s3://eu-data/datasets-us/x.csv")),
    ("other-scheme-same-bucket", _uri("gs://eu-data/datasets/x.csv")),
    ("output-in-us", {"output": {"uri": "s3://us-models/run-1"}}),
    ("checkpoint-from-us", {"task": {"type": "tabular-classification", "finetune": {"checkpointUri": US}}}),
    ("pvc-wrong-storage-class", _uri(f"pvc://{US_CLAIM}/datasets/x.csv")),
    ("pvc-missing-claim", _uri("pvc://ghost-claim/datasets/x.csv")),
    ("us-pool", {"nodePool": "h100-us"}),
    ("pool-alias-by-case", {"nodePool": "A100-EU"}),
    ("no-pool-with-pool-allow-list", NO_POOL),
    ("pool-alias-in-node-selector", {**NO_POOL, **_template({"nodeSelector": {"kubetrain.io/node-pool": "h100-us"}})}),
    ("region-in-node-selector", _template({"nodeSelector": {"topology.kubernetes.io/region": "us-east-1"}})),
    ("affinity-region-notin", _affinity("NotIn", ["eu-west-1"])),
    ("affinity-region-widened", _affinity("In", ["eu-west-1", "us-east-1"])),
    ("affinity-region-exists", _affinity("Exists", None)),
    ("node-name", _template({"nodeName": "h100-us-0"})),
    ("scheduler-name", _template({"schedulerName": "my-scheduler"})),
    ("env-endpoint-override", {"env": [{"name": "AWS_ENDPOINT_URL", "value": US_ENDPOINT}]}),
    ("env-endpoint-lowercase", {"env": [{"name": "aws_endpoint_url_s3", "value": US_ENDPOINT}]}),
    ("env-region", {"env": [{"name": "AWS_REGION", "value": "us-east-1"}]}),
    ("env-proxy", {"env": [{"name": "HTTPS_PROXY", "value": "http://proxy.us.example:3128"}]}),
    ("env-value-us-uri", {"env": [{"name": "EXTRA_DATA", "value": US}]}),
    ("template-env-dataset-override", _trainer_env("KUBETRAIN_DATASET_URI", US)),
    ("template-sidecar-endpoint", _template({"containers": [
        {"name": "sync", "image": "busybox", "env": [{"name": "AWS_ENDPOINT_URL_S3", "value": "x"}]}]})),
    ("template-env-from", _template({"containers": [{"name": "trainer",
                                                     "envFrom": [{"configMapRef": {"name": "x"}}]}]})),
    ("args-us-uri", {"command": ["python", "-m", "kubetrain_trainer"], "args": ["--data", US]}),
    ("template-nfs-volume", _template({"volumes": [{"name": "d", "nfs": {"server": "nfs.us.example", "path": "/"}}]})),
    ("template-pvc-volume", _template({"volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": US_CLAIM}}]})),
    # Class 2: other spellings of a store (fsspec's aliases and protocol syntaxes).
    ("scheme-env-s3a", _extra_env("s3a://us-bucket/datasets/x.csv")),
    ("scheme-env-s3a-uppercase", _extra_env("S3A://us-bucket/datasets/x.csv")),
    ("scheme-env-gcs", _extra_env("gcs://us-bucket/datasets/x.csv")),
    ("scheme-env-https-store", _extra_env("https://us-bucket.s3.us-east-1.amazonaws.com/datasets/x.csv")),
    ("scheme-args-s3a", _args("s3a://us-bucket/datasets/x.csv")),
    ("scheme-args-double-colon", _args("s3::us-bucket/datasets/x.csv")),
    ("scheme-args-chained-cache", _args("simplecache::s3://us-bucket/datasets/x.csv")),
    ("scheme-args-local-alias", _args("local:///mnt/us-share/x.csv")),
    ("scheme-args-abfs", _args("abfs://us-container/datasets/x.csv")),
    # Class 1: values assembled by the kubelet's $(VAR) expansion.
    ("expand-args-two-variables", _pieces("$(P)$(R)")),
    ("expand-args-inside-a-flag", _pieces("--data=$(P)$(R)")),
    ("expand-env-chain", {"env": [{"name": "P", "value": "s3:"}, {"name": "DATA", "value": "$(P)//us-bucket/x"}]}),
    ("expand-template-command", _trainer(command=["sh", "-c", "$(S)us-bucket/x"],
                                         env=[{"name": "S", "value": "s3://"}])),
    ("expand-sidecar-args", _template({"containers": [{"name": "sync", "image": "amazon/aws-cli", "args": [
        "s3", "sync", "$(A)$(B)", "/data"], "env": [{"name": "A", "value": "s3://"},
                                                    {"name": "B", "value": "us-bucket"}]}]})),
    ("expand-hidden-configmap-piece", {**_args("$(P)//us-bucket/x"),
                                       **_value_from("P", CONFIG_MAP_KEY)}),
    ("expand-hidden-secret-piece", {**_args("s3:$(TOKEN)"), **_value_from("TOKEN", SECRET_KEY)}),
    ("expand-annotation-via-field-ref", {**_args("$(P)//us-bucket/x"),
                                         "podTemplate": {"metadata": {"annotations": {"s": "s3:"}},
                                                         "spec": {"containers": [{"name": "trainer", "env": [
                                                             {"name": "P", "valueFrom": {"fieldRef": {
                                                                 "fieldPath": "metadata.annotations['s']"}}}]}]}}}),
    ("expand-liveness-probe-command", _trainer(livenessProbe=_exec("sh", "-c", "test -e $(P)$(R)"), env=[
        {"name": "P", "value": "s3:"}, {"name": "R", "value": "//us-bucket/x"}])),
    ("expand-startup-probe-native-sidecar", _template({"initContainers": [{
        "name": "sync", "image": SYNC_IMAGE, "restartPolicy": "Always", "env": [{"name": "S", "value": "gs://"}],
        "startupProbe": _exec("aws", "s3", "ls", "$(S)us-bucket/x")}]})),
    # Class 3: runtime parameters that reach the pods' command lines.
    ("ray-start-param-spilling", _ray({"object-spilling-config": US_SPILL})),
    ("ray-start-param-storage-s3a", _ray({"storage": "s3a://us-bucket/ray"})),
    ("ray-start-param-expanded", _ray({"temp-dir": "$(P)$(R)"}, env=[
        {"name": "P", "value": "s3:"}, {"name": "R", "value": "//us-bucket/x"}])),
    ("ray-driver-args", _ray({}, command=["python", "driver.py"], args=["--data", US])),
    # Class 4: values the operator cannot read, and configuration that redirects storage clients.
    ("value-from-config-map", _value_from("EXTRA", CONFIG_MAP_KEY)),
    ("value-from-file-key", {"podTemplate": {"spec": {"volumes": [{"name": "v", "emptyDir": {}}], "containers": [
        {"name": "trainer", "env": [{"name": "EXTRA", "valueFrom": {
            "fileKeyRef": {"volumeName": "v", "path": "p", "key": "k"}}}]}]}}}),
    ("value-from-annotation", {"podTemplate": {"metadata": {"annotations": {"data": US}}, "spec": {"containers": [
        {"name": "trainer", "env": [{"name": "EXTRA", "valueFrom": {"fieldRef": {
            "fieldPath": "metadata.annotations['data']"}}}]}]}}}),
    ("template-env-from-secret", _trainer(envFrom=[{"secretRef": {"name": "creds"}}])),
    ("env-home", {"env": [{"name": "HOME", "value": "/mnt/config"}]}),
    ("env-xdg-config-home", {"env": [{"name": "XDG_CONFIG_HOME", "value": "/mnt/config"}]}),
    ("env-default-profile", {"env": [{"name": "AWS_DEFAULT_PROFILE", "value": "us"}]}),
    ("env-gce-metadata-host", {"env": [{"name": "GCE_METADATA_HOST", "value": "metadata.us.example"}]}),
    ("mount-aws-config", {"podTemplate": {"spec": {"volumes": [{"name": "c", "configMap": {"name": "aws"}}],
                                                   "containers": [{"name": "trainer", "volumeMounts": [
                                                       {"name": "c", "mountPath": "/home/trainer/.aws"}]}]}}}),
    ("mount-over-home", _mount("/root")),
    ("mount-config-item-path", _template({"volumes": [{"name": "c", "secret": {
        "secretName": "s", "items": [{"key": "k", "path": ".config/fsspec/conf.json"}]}}]})),
    # Class 5: every string of every container, whatever its field (hooks, probes, sidecars).
    ("hook-post-start-exec", _trainer(lifecycle={"postStart": _exec("sh", "-c", f"aws s3 cp {US} /tmp/x")})),
    ("hook-pre-stop-sidecar", _template({"containers": [{"name": "sync", "image": SYNC_IMAGE, "lifecycle": {
        "preStop": _exec("aws", "s3", "sync", "/out", "s3://us-bucket/out")}}]})),
    ("probe-liveness-exec",
     _trainer(livenessProbe=_exec("python", "-c", "import fsspec; fsspec.open('gs://us-bucket/x')"))),
    ("probe-readiness-exec", _trainer(readinessProbe=_exec("sh", "-c", "test -n s3a://us-bucket/x"))),
    ("probe-startup-native-sidecar", _template({"initContainers": [{
        "name": "sync", "image": SYNC_IMAGE, "restartPolicy": "Always",
        "startupProbe": _exec("aws", "s3", "ls", "s3://us-bucket/x")}]})),
    ("probe-http-get-host", _trainer(readinessProbe={"httpGet": {
        "host": "s3.us-east-1.amazonaws.com", "path": "/us-bucket/x", "port": 443, "scheme": "HTTPS"}})),
    ("probe-http-get-host-header", _trainer(livenessProbe={"httpGet": {
        "port": 8080, "path": "/", "httpHeaders": [{"name": "Host", "value": "us-bucket.s3.amazonaws.com"}]}})),
    ("probe-tcp-socket-host", _trainer(livenessProbe={"tcpSocket": {"host": "203.0.113.7", "port": 443}})),
    ("field-working-dir", _trainer(workingDir="/mnt/s3://us-bucket/x")),
    # Class 6: URIs behind JSON string escapes and percent-encoding.
    ("escaped-env-json-slash", _extra_env('{"uri":"s3:\\/\\/us-bucket\\/spill"}')),
    ("escaped-env-unicode-slash", _extra_env("s3:\\u002f\\u002fus-bucket/x")),
    ("escaped-env-unicode-colon", _extra_env("s3\\u003a//us-bucket/x")),
    ("escaped-env-percent", _extra_env("s3%3A%2F%2Fus-bucket%2Fx")),
    ("escaped-env-shell-hex", _extra_env("$'s3:\\x2f\\x2fus-bucket/x'")),
    ("escaped-env-printf-octal", _extra_env("s3\\072//us-bucket/x")),
    ("escaped-env-json-in-json", _extra_env('{"cfg":"{\\"uri\\":\\"s3:\\\\/\\\\/us-bucket\\\\/x\\"}"}')),
    ("ray-start-param-escaped-spilling", _ray({"object-spilling-config": US_SPILL.replace("/", "\\/")})),
    ("ray-start-param-unicode-system-config", _ray({"system-config": '{"object_spilling_config":"' + US_SPILL.replace(
        '"', '\\"').replace("/", "\\\\u002f") + '"}'})),
    # Class 7: redirected name resolution and trusted certificates.
    ("env-aws-ca-bundle", {"env": [{"name": "AWS_CA_BUNDLE", "value": "/etc/trainer/ca.pem"}]}),
    ("env-ssl-cert-file", {"env": [{"name": "SSL_CERT_FILE", "value": "/etc/trainer/ca.pem"}]}),
    ("env-ssl-cert-dir", {"env": [{"name": "SSL_CERT_DIR", "value": "/etc/trainer"}]}),
    ("env-requests-ca-bundle", {"env": [{"name": "REQUESTS_CA_BUNDLE", "value": "/etc/trainer/ca.pem"}]}),
    ("env-curl-ca-bundle", {"env": [{"name": "curl_ca_bundle", "value": "/etc/trainer/ca.pem"}]}),
    ("env-node-extra-ca-certs", {"env": [{"name": "NODE_EXTRA_CA_CERTS", "value": "/etc/trainer/ca.pem"}]}),
    ("dns-host-aliases",
     _template({"hostAliases": [{"ip": "203.0.113.7", "hostnames": ["s3.eu-west-1.amazonaws.com"]}]})),
    ("dns-policy-none", _template({"dnsPolicy": "None", "dnsConfig": {"nameservers": ["203.0.113.53"]}})),
    ("dns-config-nameservers", _template({"dnsConfig": {"nameservers": ["203.0.113.53"]}})),
    ("dns-config-searches", _template({"dnsConfig": {"searches": ["us.example"]}})),
    ("mount-etc-hosts", _mount("/etc/hosts")),
    ("mount-etc-ssl-certs", _mount("/etc/ssl/certs")),
    ("mount-over-etc", _mount("/etc")),
    # Class 8: mount paths spelled another way, and downward-API files placed as configuration.
    ("mount-double-slash-home", _mount("//home/trainer")),
    ("mount-dot-segment-home", _mount("/home/./trainer")),
    ("mount-doubled-slash-trailing-home", _mount("/home//trainer/")),
    ("mount-root-dot", _mount("/root/.")),
    ("mount-dotdot-home", _mount("/data/../root")),
    ("mount-downward-api-item-path", _item_volume({"downwardAPI": {"items": [DOWNWARD_ITEM]}})),
    ("mount-projected-downward-api-item-path", _item_volume({"projected": {"sources": [
        {"downwardAPI": {"items": [DOWNWARD_ITEM]}}]}})),
    # Class 9: the scanner finds a scheme wherever it ends, whatever precedes it.
    ("scheme-args-digit-before-scheme", _args("1s3://us-bucket/x")),
    ("scheme-args-underscore-before-scheme", _args("a_s3://us-bucket/x")),
    ("scheme-args-unknown-chain", _args("zzz::s3://us-bucket/x")),
    ("scheme-env-letters-before-scheme", _extra_env("xgcs://us-bucket/x")),
]


CLAIM_CLASSES: dict[str, str | None] = {US_CLAIM: US_CLASS, EU_CLAIM: EU_CLASS, "ghost-claim": None}


def refused_field(case: str) -> str:
    """The job field each refusal must name, so a case refused for an unrelated reason fails."""
    fields = {
        "output-in-us": "spec.output.uri",
        "checkpoint-from-us": "spec.task.finetune.checkpointUri",
        "us-pool": "spec.nodePool",
        "pool-alias-by-case": "spec.nodePool",
        "no-pool-with-pool-allow-list": "spec.nodePool",
        "pool-alias-in-node-selector": "spec.podTemplate.spec.nodeSelector[kubetrain.io/node-pool]",
        "region-in-node-selector": "spec.podTemplate.spec.nodeSelector[topology.kubernetes.io/region]",
        "node-name": "spec.podTemplate.spec.nodeName",
        "scheduler-name": "spec.podTemplate.spec.schedulerName",
        "env-value-us-uri": "spec.env[0]",
        "args-us-uri": "spec.args[1]",
        "ray-driver-args": "spec.args[1]",
        "template-env-from": "envFrom",
        "template-nfs-volume": "volumes[0].nfs",
        "template-pvc-volume": "volumes[0].persistentVolumeClaim",
        "hook-post-start-exec": "spec.podTemplate.spec.containers[0].lifecycle.postStart.exec.command[2]",
        "hook-pre-stop-sidecar": "spec.podTemplate.spec.containers[0].lifecycle.preStop.exec.command[4]",
        "probe-liveness-exec": "spec.podTemplate.spec.containers[0].livenessProbe.exec.command[2]",
        "probe-readiness-exec": "spec.podTemplate.spec.containers[0].readinessProbe.exec.command[2]",
        "probe-startup-native-sidecar": "spec.podTemplate.spec.initContainers[0].startupProbe.exec.command[3]",
        "probe-http-get-host": "spec.podTemplate.spec.containers[0].readinessProbe.httpGet.host",
        "probe-http-get-host-header": "spec.podTemplate.spec.containers[0].livenessProbe.httpGet.httpHeaders[0].name",
        "probe-tcp-socket-host": "spec.podTemplate.spec.containers[0].livenessProbe.tcpSocket.host",
        "field-working-dir": "spec.podTemplate.spec.containers[0].workingDir",
        "dns-host-aliases": "spec.podTemplate.spec.hostAliases",
        "dns-policy-none": "spec.podTemplate.spec.dnsPolicy",
    }
    if case in fields:
        return fields[case]
    if case.startswith("expand-") or case == "ray-start-param-expanded":
        return "after the kubelet's $(VAR) expansion"
    if case.startswith("ray-start-param-"):
        return "spec.ray.rayStartParams["
    if case.startswith("value-from-annotation"):
        return "spec.podTemplate.metadata.annotations[data]"
    if case.startswith("value-from-"):
        return "spec.allowedValueSources"
    if case.startswith("mount-"):
        return "items[0].path" if case.endswith("item-path") else "volumeMounts[0].mountPath"
    if case.startswith("dns-config-"):
        return "spec.podTemplate.spec.dnsConfig"
    if case.startswith("escaped-env-"):
        return "spec.env[0]"
    if case == "template-env-from-secret":
        return "envFrom"
    if case.startswith("scheme-env-"):
        return "spec.env[0]"
    if case.startswith("scheme-args-"):
        return "spec.args[1]"
    if case.startswith("affinity-"):
        return "spec.podTemplate.spec.affinity"
    if case.startswith("env-"):
        return "spec.env[0].name"
    if case.startswith("template-"):
        return "spec.podTemplate.spec.containers[0].env[0].name"
    return "spec.dataset.uri"
