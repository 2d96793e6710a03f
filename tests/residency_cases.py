"""The residency bypass table, shared by the pure test (tests/unit) and the one through the real
API server and webhook (tests/integration): each case is one trick to run, read or write outside
an EU-only policy, and every one must be refused."""

from __future__ import annotations

import copy
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


BASE_SPEC: dict[str, Any] = {
    "workers": 1,
    "nodePool": "a100-eu",
    "resources": {"cpu": "1", "memory": "1Gi", "gpus": 1},
    "task": {"type": "tabular-classification", "epochs": 1},
    "dataset": {"uri": "s3://eu-data/datasets/train.csv"},
    "output": {"uri": "s3://eu-models/run-1"},
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


NO_POOL = {"nodePool": None, "resources": {"cpu": "1", "memory": "1Gi", "gpus": 0}}

# (id, spec overrides merged into BASE_SPEC; None removes a key)
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
    ("expand-template-command", _trainer(command=["sh", "-c", "$(S)us-bucket/x"], env=[{"name": "S", "value": "s3://"}])),
    ("expand-sidecar-args", _template({"containers": [{"name": "sync", "image": "amazon/aws-cli", "args": [
        "s3", "sync", "$(A)$(B)", "/data"], "env": [{"name": "A", "value": "s3://"}, {"name": "B", "value": "us-bucket"}]}]})),
    ("expand-hidden-configmap-piece", {**_args("$(P)//us-bucket/x"),
                                       **_value_from("P", CONFIG_MAP_KEY)}),
    ("expand-hidden-secret-piece", {**_args("s3:$(TOKEN)"), **_value_from("TOKEN", SECRET_KEY)}),
    ("expand-annotation-via-field-ref", {**_args("$(P)//us-bucket/x"),
                                         "podTemplate": {"metadata": {"annotations": {"s": "s3:"}},
                                                         "spec": {"containers": [{"name": "trainer", "env": [
                                                             {"name": "P", "valueFrom": {"fieldRef": {
                                                                 "fieldPath": "metadata.annotations['s']"}}}]}]}}}),
    # Class 3: runtime parameters that reach the pods' command lines.
    ("ray-start-param-spilling", _ray({"object-spilling-config": US_SPILL})),
    ("ray-start-param-storage-s3a", _ray({"storage": "s3a://us-bucket/ray"})),
    ("ray-start-param-expanded", _ray({"temp-dir": "$(P)$(R)"}, env=[
        {"name": "P", "value": "s3:"}, {"name": "R", "value": "//us-bucket/x"}])),
    ("ray-driver-args", _ray({}, command=["python", "driver.py"], args=["--data", US])),
    # Class 4: values the operator cannot read, and configuration that redirects storage clients.
    ("value-from-config-map", _value_from("EXTRA", CONFIG_MAP_KEY)),
    ("value-from-file-key", _template({"volumes": [{"name": "v", "emptyDir": {}}], "containers": [{"name": "trainer", "env": [
        {"name": "EXTRA", "valueFrom": {"fileKeyRef": {"volumeName": "v", "path": "p", "key": "k"}}}]}]})),
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
    ("mount-over-home", _template({"volumes": [{"name": "c", "emptyDir": {}}], "containers": [
        {"name": "trainer", "volumeMounts": [{"name": "c", "mountPath": "/root"}]}]})),
    ("mount-config-item-path", _template({"volumes": [{"name": "c", "secret": {
        "secretName": "s", "items": [{"key": "k", "path": ".config/fsspec/conf.json"}]}}]})),
]


def _merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in overrides.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def job_manifest(name: str, namespace: str, overrides: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "kubetrain.io/v1alpha1",
        "kind": "TrainingJob",
        "metadata": {"name": name, "namespace": namespace},
        "spec": _merge(BASE_SPEC, overrides),
    }

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
        return {"mount-config-item-path": "items[0].path"}.get(case, "volumeMounts[0].mountPath")
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
