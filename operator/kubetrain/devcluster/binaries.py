"""Locates the control plane's binaries, building them once per machine and version.

The build itself lives in build_binaries.sh (Go wrapper modules); this module only decides
whether it must run and where its results are, so Python and shell read one pinned version list.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from importlib import resources
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from kubetrain.devcluster.kueue import available

_PACKAGE = "kubetrain.devcluster"


class Versions(BaseModel):
    """The pinned component versions from versions.env."""

    model_config = ConfigDict(frozen=True)

    kubernetes: str
    etcd: str
    kwok: str
    helm: str
    coredns: str
    registry: str
    kueue: str

    @classmethod
    def pinned(cls) -> "Versions":
        text = resources.files(_PACKAGE).joinpath("versions.env").read_text()
        values: dict[str, str] = {}
        for line in text.splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                key, _, value = line.partition("=")
                values[key.removesuffix("_VERSION").lower()] = value
        return cls.model_validate(values)


class Binaries(BaseModel):
    """Absolute paths of every executable the dev cluster runs."""

    model_config = ConfigDict(frozen=True)

    kube_apiserver: Path
    kube_controller_manager: Path
    kube_scheduler: Path
    kubectl: Path
    kubelet: Path
    kube_proxy: Path
    etcd: Path
    kwok: Path
    helm: Path
    coredns: Path
    registry: Path

    def missing(self) -> list[Path]:
        return [p for p in self.model_dump().values() if not os.access(p, os.X_OK)]


def kueue_binary() -> Path:
    """Kueue's manager, with its CRDs and webhook manifests beside it (build_binaries.sh kueue)."""
    return cache_dir() / "bin" / f"kueue-{Versions.pinned().kueue}" / "kueue"


def cache_dir() -> Path:
    """Where binaries and build trees live; outside the repo so clones share one build."""
    return Path(os.environ.get("KUBETRAIN_CACHE", Path.home() / ".cache" / "kubetrain"))


def expected_binaries(versions: Versions | None = None) -> Binaries:
    v = versions or Versions.pinned()
    bin_dir = cache_dir() / "bin"
    k8s = bin_dir / f"kubernetes-{v.kubernetes}"
    return Binaries(
        kube_apiserver=k8s / "kube-apiserver",
        kube_controller_manager=k8s / "kube-controller-manager",
        kube_scheduler=k8s / "kube-scheduler",
        kubectl=k8s / "kubectl",
        kubelet=k8s / "kubelet",
        kube_proxy=k8s / "kube-proxy",
        etcd=bin_dir / f"etcd-{v.etcd}" / "etcd",
        kwok=bin_dir / f"kwok-{v.kwok}" / "kwok",
        helm=bin_dir / f"helm-{v.helm}" / "helm",
        coredns=bin_dir / f"coredns-{v.coredns}" / "coredns",
        registry=bin_dir / f"registry-{v.registry}" / "registry",
    )


def ensure_binaries() -> Binaries:
    wanted = expected_binaries()
    _build("all", f"control-plane binaries into {cache_dir() / 'bin'}", wanted.missing)
    return wanted


def ensure_kueue() -> Path:
    """Kueue's manager binary, built on first use only: most clusters never start Kueue."""
    binary = kueue_binary()
    _build("kueue", f"Kueue into {binary.parent}", lambda: [] if available(binary) else [binary])
    return binary


def _build(target: str, what: str, missing: Callable[[], list[Path]]) -> None:
    """build_binaries.sh `target`, once per machine: when anything is `missing`, and checked after."""
    if not missing():
        return
    script = Path(str(resources.files(_PACKAGE).joinpath("build_binaries.sh")))
    print(f"kubetrain: building {what} (first run on this machine only)", file=sys.stderr)
    subprocess.run(["bash", str(script), target], check=True, stdout=sys.stderr)
    still = missing()
    if still:
        raise RuntimeError(f"build finished but these are missing: {still}")
