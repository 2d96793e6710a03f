"""The one builder of TrainingJobs for tests, like Kubeflow Trainer's `MakeTrainJobWrapper` and
JobSet's `testutils.MakeJobSet`: start from a valid manifest, change what the test is about, and
take the manifest (`manifest()`, what the API server or the webhook receives) or the validated
model (`obj()`, what the planner and the renderers receive).

    DDP = JobBuilder.example("pytorch-ddp.yaml").placed("ns")
    job = DDP.spec(workers=3).run_policy(suspend=True).status(phase="Running").obj()

Every method returns a new builder, so a partly built job can be a module constant that tests
extend. The starting points: `example` (a file of examples/, what users apply), `eu` (the
residency tests' job, runnable under the EU-only policy of tests/residency_cases.py) and `bare`
(only what the test gives)."""

from __future__ import annotations

import copy
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from kubetrain.api import TrainingJob

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
API_VERSION, KIND = "kubetrain.io/v1alpha1", "TrainingJob"

# A small job on the EU pool that an EU-only policy admits (tests/residency_cases.py).
EU_SPEC: dict[str, Any] = {
    "workers": 1,
    "nodePool": "a100-eu",
    "resources": {"cpu": "1", "memory": "1Gi", "gpus": 1},
    "task": {"type": "tabular-classification", "epochs": 1},
    "dataset": {"uri": "s3://eu-data/datasets/train.csv"},
    "output": {"uri": "s3://eu-models/run-1"},
}


def example(name: str) -> dict[str, Any]:
    """A manifest of examples/ as users apply it."""
    manifest: dict[str, Any] = yaml.safe_load((EXAMPLES / name).read_text())
    return manifest


def merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """`base` with `overrides` merged in, maps key by key (a JSON merge patch): None removes a key."""
    merged = copy.deepcopy(base)
    for key, value in overrides.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def stamp(moment: datetime) -> str:
    """A time as the API server writes it in status."""
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


class JobBuilder:
    """A TrainingJob manifest under construction; immutable, each method returns a new builder."""

    def __init__(self, manifest: dict[str, Any]) -> None:
        self._manifest = copy.deepcopy(manifest)

    @classmethod
    def example(cls, name: str = "pytorch-ddp.yaml") -> JobBuilder:
        return cls(example(name))

    @classmethod
    def eu(cls, name: str, namespace: str) -> JobBuilder:
        return cls.bare(name, namespace).spec(**EU_SPEC)

    @classmethod
    def bare(cls, name: str, namespace: str) -> JobBuilder:
        return cls({"apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": name, "namespace": namespace},
                    "spec": {}})

    def _with(self, path: tuple[str, ...], **fields: Any) -> JobBuilder:
        manifest = copy.deepcopy(self._manifest)
        node = manifest
        for key in path:
            node = node.setdefault(key, {})
        node.update(copy.deepcopy(fields))
        return JobBuilder(manifest)

    # metadata
    def metadata(self, **fields: Any) -> JobBuilder:
        return self._with(("metadata",), **fields)

    def name(self, name: str) -> JobBuilder:
        return self.metadata(name=name)

    def named(self, name: str) -> JobBuilder:
        """Another job: this name, and a uid of its own."""
        return self.metadata(name=name, uid=f"uid-{name}")

    def uid(self, uid: str) -> JobBuilder:
        return self.metadata(uid=uid)

    def generation(self, generation: int) -> JobBuilder:
        return self.metadata(generation=generation)

    def created(self, moment: datetime) -> JobBuilder:
        return self.metadata(creationTimestamp=moment.isoformat())

    def placed(self, namespace: str, uid: str = "uid-1", generation: int = 1) -> JobBuilder:
        """The job as the operator sees it: in a namespace, with the uid and generation the server set."""
        return self.metadata(namespace=namespace, uid=uid, generation=generation)

    # spec
    def spec(self, **fields: Any) -> JobBuilder:
        """Sets these spec fields, each replaced whole."""
        return self._with(("spec",), **fields)

    def merge(self, **overrides: Any) -> JobBuilder:
        """Merges these spec fields in, maps key by key; None removes a field (see `merge`)."""
        return JobBuilder({**self._manifest, "spec": merge(self._manifest.get("spec", {}), overrides)})

    def resources(self, **fields: Any) -> JobBuilder:
        return self._with(("spec", "resources"), **fields)

    def run_policy(self, **fields: Any) -> JobBuilder:
        """Sets these fields of spec.runPolicy, keeping its others."""
        return self._with(("spec", "runPolicy"), **fields)

    def deadline(self, seconds: int | None) -> JobBuilder:
        """spec.runPolicy is {activeDeadlineSeconds: seconds}, or empty for None."""
        return self.spec(runPolicy={"activeDeadlineSeconds": seconds} if seconds else {})

    def ray(self, **fields: Any) -> JobBuilder:
        """runtime: ray, with these fields of spec.ray."""
        return self.spec(runtime="ray")._with(("spec", "ray"), **fields)

    # status
    def status(self, status: dict[str, Any] | None = None, **fields: Any) -> JobBuilder:
        """Replaces the status with `status` (none: empty) and these fields."""
        return JobBuilder({**self._manifest, "status": {**copy.deepcopy(status or {}), **copy.deepcopy(fields)}})

    def restarts(self, restarts: int) -> JobBuilder:
        return self._with(("status",), restarts=restarts)

    def conditions(self, *types: str, at: datetime) -> JobBuilder:
        """status.conditions: each type True since `at`, with its type as reason."""
        return self._with(("status",), conditions=[
            {"type": t, "status": "True", "reason": t, "message": "", "lastTransitionTime": stamp(at)} for t in types
        ])

    def started(self, moment: datetime) -> JobBuilder:
        return self._with(("status",), startTime=stamp(moment))

    def completed(self, moment: datetime) -> JobBuilder:
        return self._with(("status",), completionTime=stamp(moment))

    # results
    def manifest(self) -> dict[str, Any]:
        return copy.deepcopy(self._manifest)

    def obj(self) -> TrainingJob:
        return TrainingJob.model_validate(self._manifest)
