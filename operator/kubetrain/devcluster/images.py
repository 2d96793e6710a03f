"""The container images a real node runs, built here with the Docker Engine and loaded into the
node's containerd.

No registry is reachable from these machines, so every base is made locally: a Debian root
filesystem from `debootstrap` with python3 (the operator's and the CPU trainer's base), and
`FROM scratch` images for the pause process and CoreDNS (static binaries). Each image is tagged
with a hash of everything it is built from, so a warm run finds it and builds nothing; loading
into containerd is skipped the same way.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from kubetrain.devcluster import realnode
from kubetrain.devcluster.binaries import cache_dir
from kubetrain.devcluster.realnode import RealNodePaths

HASH_LABEL = "io.kubetrain.content-hash"
DEBIAN_SUITE = "bookworm"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
BASE_IMAGE = "kubetrain.local/debian-python:bookworm"
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
# What users pull on kind (charts/kubetrain/values-kind.yaml names the same tags).
OPERATOR_IMAGE = "kubetrain/operator:0.1.0"
TRAINER_CPU_IMAGE = "kubetrain/trainer:0.1.0-cpu"
# PyPI's torch wheel (CUDA-enabled, runs on CPU): PyTorch's CPU-only index is not reachable here.
TEST_TORCH = "torch==2.15.0"
TEST_TORCH_INDEX = "https://pypi.org/simple"

PAUSE_C = r"""
/* The pod sandbox's process: holds the pod's namespaces, exits on SIGTERM/SIGINT, reaps zombies. */
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>
static void stop(int sig) { (void)sig; _exit(0); }
static void reap(int sig) { (void)sig; while (waitpid(-1, NULL, WNOHANG) > 0) {} }
int main(void) {
  signal(SIGTERM, stop);
  signal(SIGINT, stop);
  signal(SIGCHLD, reap);
  for (;;) pause();
}
"""


class ImageBuildError(RuntimeError):
    """A build failed; the message names the image and the log with the builder's output."""


class BuiltImage(BaseModel):
    model_config = ConfigDict(frozen=True)

    tag: str
    image_id: str


def log_dir() -> Path:
    return cache_dir() / "images" / "logs"


def content_hash(files: Iterable[Path], root: Path, extra: Iterable[str] = ()) -> str:
    """A hash of file names (relative to `root`), their bytes, and `extra` strings (build
    arguments, the base image's id)."""
    digest = hashlib.sha256()
    for path in sorted(files):
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    for item in extra:
        digest.update(item.encode() + b"\0")
    return digest.hexdigest()[:16]


def _tree(root: Path, *parts: str) -> list[Path]:
    """Files under `root/part` (a file or a directory), bytecode and caches left out."""
    found: list[Path] = []
    for part in parts:
        path = root / part
        candidates = [path] if path.is_file() else path.rglob("*")
        found += [p for p in candidates if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"]
    return found


def _docker(*args: str, log: Path | None = None, input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    if log is None:
        return subprocess.run(["docker", *args], capture_output=True, input=input)
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        return subprocess.run(["docker", *args], stdout=out, stderr=subprocess.STDOUT, input=input)


def image_id(tag: str) -> str | None:
    result = _docker("image", "inspect", "--format={{.Id}}", tag)
    return result.stdout.decode().strip() if result.returncode == 0 else None


def _labelled_hash(tag: str) -> str | None:
    result = _docker("image", "inspect", f"--format={{{{index .Config.Labels \"{HASH_LABEL}\"}}}}", tag)
    return result.stdout.decode().strip() if result.returncode == 0 else None


def _say(message: str) -> None:
    print(f"kubetrain images: {message}", file=sys.stderr, flush=True)


def build(tag: str, context: Path, files: list[Path], build_args: dict[str, str], dockerfile: Path | None = None) -> BuiltImage:
    """`docker build`, unless an image with this tag was built from the same content."""
    base = build_args.get("BASE")
    extra = [f"{k}={v}" for k, v in sorted(build_args.items())] + ([image_id(base) or base] if base else [])
    wanted = content_hash(files, context, extra)
    if _labelled_hash(tag) == wanted:
        return BuiltImage(tag=tag, image_id=image_id(tag) or "")
    log = log_dir() / f"{tag.replace('/', '_').replace(':', '_')}.log"
    _say(f"building {tag} (log: {log})")
    argv = ["build", "--label", f"{HASH_LABEL}={wanted}", "-t", tag]
    for key, value in build_args.items():
        argv += ["--build-arg", f"{key}={value}"]
    if dockerfile is not None:
        argv += ["-f", str(dockerfile)]
    if _docker(*argv, str(context), log=log).returncode != 0:
        raise ImageBuildError(f"docker build of {tag} failed; see {log}")
    return BuiltImage(tag=tag, image_id=image_id(tag) or "")


def debian_python_base() -> BuiltImage:
    """Debian with python3 and its venv module: the stand-in for `python:3.11-slim`, made with
    debootstrap from Debian's archive because no registry can be pulled from."""
    trusted = [HOST_CA_BUNDLE] if HOST_CA_BUNDLE.is_file() else []
    wanted = content_hash(trusted, Path("/"), [DEBIAN_SUITE, DEBIAN_MIRROR, "python3,python3-venv,ca-certificates"])
    if _labelled_hash(BASE_IMAGE) == wanted:
        return BuiltImage(tag=BASE_IMAGE, image_id=image_id(BASE_IMAGE) or "")
    log = log_dir() / "debian-python.log"
    _say(f"making {BASE_IMAGE} with debootstrap (a few minutes, once per machine; log: {log})")
    with tempfile.TemporaryDirectory(prefix="kubetrain-rootfs-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        argv = ["debootstrap", "--variant=minbase", "--include=python3,python3-venv,ca-certificates",
                DEBIAN_SUITE, str(rootfs), DEBIAN_MIRROR]
        with log.open("ab") as out:
            if subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT).returncode != 0:
                raise ImageBuildError(f"debootstrap failed; see {log}")
            for package in (rootfs / "var" / "cache" / "apt" / "archives").glob("*.deb"):
                package.unlink()
            # Builds on this base install from PyPI through whatever the host trusts (a
            # network's TLS-inspecting proxy CA included): the image gets the host's bundle.
            for path in trusted:
                shutil.copyfile(path, rootfs / path.relative_to("/"))
            tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
            imported = subprocess.run(
                ["docker", "import", "--change", f"LABEL {HASH_LABEL}={wanted}",
                 "--change", f"ENV PIP_CERT={HOST_CA_BUNDLE} SSL_CERT_FILE={HOST_CA_BUNDLE}",
                 "--change", 'CMD ["/bin/bash"]', "-", BASE_IMAGE],
                stdin=tar.stdout, stdout=out, stderr=subprocess.STDOUT,
            )
            tar.wait()
        if imported.returncode != 0 or tar.returncode != 0:
            raise ImageBuildError(f"docker import of the Debian root filesystem failed; see {log}")
    return BuiltImage(tag=BASE_IMAGE, image_id=image_id(BASE_IMAGE) or "")


def _scratch_image(tag: str, binary: Path, name: str, entrypoint: list[str]) -> BuiltImage:
    with tempfile.TemporaryDirectory(prefix="kubetrain-image-") as tmp:
        context = Path(tmp)
        shutil.copy2(binary, context / name)
        entry = ", ".join(f'"{part}"' for part in entrypoint)
        (context / "Dockerfile").write_text(f"FROM scratch\nCOPY {name} /{name}\nENTRYPOINT [{entry}]\n")
        return build(tag, context, [context / name, context / "Dockerfile"], {})


def pause_image() -> BuiltImage:
    """The pod sandbox image containerd's CRI names; a static build of a few lines of C."""
    with tempfile.TemporaryDirectory(prefix="kubetrain-pause-") as tmp:
        source = Path(tmp) / "pause.c"
        source.write_text(PAUSE_C)
        binary = Path(tmp) / "pause"
        compiled = subprocess.run(["gcc", "-static", "-O2", "-o", str(binary), str(source)], capture_output=True, text=True)
        if compiled.returncode != 0:
            raise ImageBuildError(f"compiling pause failed: {compiled.stderr.strip()}")
        subprocess.run(["strip", str(binary)], capture_output=True)
        return _scratch_image(realnode.PAUSE_IMAGE, binary, "pause", ["/pause"])


def coredns_image(coredns: Path, version: str) -> BuiltImage:
    return _scratch_image(f"{realnode.COREDNS_IMAGE}:{version}", coredns, "coredns", ["/coredns"])


def operator_image(repo: Path) -> BuiltImage:
    """The repository's top-level Dockerfile on the locally made Debian base."""
    base = debian_python_base()
    files = _tree(repo, "Dockerfile", ".dockerignore", "pyproject.toml", "README.md", "constraints.txt",
                  "operator", "trainer-image/pyproject.toml", "trainer-image/kubetrain_trainer")
    return build(OPERATOR_IMAGE, repo, files, {"BASE": base.tag})


def trainer_cpu_image(repo: Path) -> BuiltImage:
    """trainer-image/Dockerfile's CPU variant on the locally made Debian base."""
    base = debian_python_base()
    context = repo / "trainer-image"
    files = _tree(context, "Dockerfile", ".dockerignore", "pyproject.toml", "kubetrain_trainer")
    return build(TRAINER_CPU_IMAGE, context, files,
                 {"BASE": base.tag, "TORCH": TEST_TORCH, "TORCH_INDEX": TEST_TORCH_INDEX})


def load_into_node(paths: RealNodePaths, image: BuiltImage) -> None:
    """Copies a Docker image into the node's containerd (what `kind load docker-image` does),
    unless this very image was loaded before."""
    marker = paths.images_root / "kubetrain-loaded" / image.tag.replace("/", "_").replace(":", "_")
    if marker.exists() and marker.read_text() == image.image_id:
        return
    _say(f"loading {image.tag} into the node's containerd")
    with tempfile.TemporaryFile() as archive:
        saved = subprocess.run(["docker", "save", image.tag], stdout=archive, stderr=subprocess.PIPE)
        if saved.returncode != 0:
            raise ImageBuildError(f"docker save {image.tag} failed: {saved.stderr.decode().strip()}")
        archive.seek(0)
        imported = subprocess.run(
            ["/usr/bin/ctr", f"--address={paths.containerd_socket}", f"--namespace={realnode.K8S_NAMESPACE}",
             "images", "import", "-"],
            stdin=archive, capture_output=True,
        )
    if imported.returncode != 0:
        raise ImageBuildError(f"importing {image.tag} into containerd failed: {imported.stderr.decode().strip()}")
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(image.image_id)
