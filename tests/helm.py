"""The chart driven by the real helm binary (the cached one `kubetrain dev` builds)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml

from kubetrain.devcluster.binaries import Versions, ensure_binaries

CHART = Path(__file__).resolve().parent.parent / "charts" / "kubetrain"
DATA = Path(__file__).resolve().parent / "data"


class Helm:
    """`helm` against one kubeconfig (None: template and lint only)."""

    def __init__(self, kubeconfig: Path | None = None) -> None:
        self.kubeconfig = kubeconfig

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        argv = [str(ensure_binaries().helm), *args]
        if self.kubeconfig is not None:
            argv.append(f"--kubeconfig={self.kubeconfig}")
        result = subprocess.run(argv, capture_output=True, text=True)
        if check and result.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
        return result

    def template(self, *values: Path, namespace: str = "kubetrain", sets: tuple[str, ...] = ()) -> list[dict[str, Any]]:
        """The rendered objects; a kube version is given because helm's offline default is old."""
        out = self.run(
            "template", "kt", str(CHART), f"--namespace={namespace}", f"--kube-version={Versions.pinned().kubernetes}",
            *value_args(values, sets),
        ).stdout
        return [doc for doc in yaml.safe_load_all(out) if doc]


def value_args(values: tuple[Path, ...], sets: tuple[str, ...]) -> list[str]:
    return [*(f"--values={v}" for v in values), *(f"--set={s}" for s in sets)]


def find(
    objects: list[dict[str, Any]], kind: str, name: str | None = None, namespace: str | None = None
) -> list[dict[str, Any]]:
    return [
        o for o in objects
        if o["kind"] == kind
        and (name is None or o["metadata"]["name"] == name)
        and (namespace is None or o["metadata"].get("namespace") == namespace)
    ]
