"""The container images a real node runs, built here with the Docker Engine and loaded into the
node's containerd.

No registry is reachable from these machines, so every base is made locally: a Debian root
filesystem from `debootstrap` with python3 (the operator's and the CPU trainer's base), and
`FROM scratch` images for the pause process and CoreDNS (static binaries). Each image is tagged
with a hash of everything it is built from (files, build arguments, the base's own hash), so a
warm run finds it and builds nothing; the node's containerd records the same hash, so an image
it already holds is neither built nor loaded again, even when Docker's own store was emptied.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

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


@dataclass(frozen=True)
class Recipe:
    """How to make one image: its tag, the hash of what it is made from, and the builder, which
    must label the image with that hash (HASH_LABEL)."""

    tag: str
    content_hash: str
    make: Callable[[], None]


def log_dir() -> Path:
    return cache_dir() / "images" / "logs"


def content_hash(files: Iterable[Path], root: Path, extra: Iterable[str] = ()) -> str:
    """A hash of file names (relative to `root`), their bytes, and `extra` strings (build
    arguments, the base image's hash)."""
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


def _log_for(tag: str) -> Path:
    return log_dir() / f"{tag.replace('/', '_').replace(':', '_')}.log"


def _labelled_hash(tag: str) -> str | None:
    result = subprocess.run(
        ["docker", "image", "inspect", f"--format={{{{index .Config.Labels \"{HASH_LABEL}\"}}}}", tag],
        capture_output=True, text=True,
    )
    return result.stdout.strip() if result.returncode == 0 else None


def _say(message: str) -> None:
    print(f"kubetrain images: {message}", file=sys.stderr, flush=True)


def ensure_built(recipe: Recipe) -> str:
    """The image's tag, after building it unless Docker holds it built from the same content."""
    if _labelled_hash(recipe.tag) != recipe.content_hash:
        _say(f"building {recipe.tag} (log: {_log_for(recipe.tag)})")
        recipe.make()
        if _labelled_hash(recipe.tag) != recipe.content_hash:
            raise ImageBuildError(f"{recipe.tag} was built without its content hash; see {_log_for(recipe.tag)}")
        # The version this build replaced is left untagged: GBs for the trainer. Only images
        # this module labelled are removed, never the user's own.
        subprocess.run(["docker", "image", "prune", "--force", "--filter", f"label={HASH_LABEL}"], capture_output=True)
    return recipe.tag


def _docker_build(tag: str, context: Path, build_args: dict[str, str], wanted: str) -> None:
    argv = ["docker", "build", "--label", f"{HASH_LABEL}={wanted}", "-t", tag]
    for key, value in build_args.items():
        argv += ["--build-arg", f"{key}={value}"]
    log = _log_for(tag)
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        if subprocess.run([*argv, str(context)], stdout=out, stderr=subprocess.STDOUT).returncode != 0:
            raise ImageBuildError(f"docker build of {tag} failed; see {log}")


def dockerfile_recipe(tag: str, context: Path, files: list[Path], build_args: dict[str, str],
                      bases: tuple[Recipe, ...] = ()) -> Recipe:
    """`docker build` of `context` (its Dockerfile), after the base images it names."""
    extra = [f"{k}={v}" for k, v in sorted(build_args.items())] + [b.content_hash for b in bases]
    wanted = content_hash(files, context, extra)

    def make() -> None:
        for base in bases:
            ensure_built(base)
        _docker_build(tag, context, build_args, wanted)

    return Recipe(tag=tag, content_hash=wanted, make=make)


def debian_python_base() -> Recipe:
    """Debian with python3 and its venv module: the stand-in for `python:3.11-slim`, made with
    debootstrap from Debian's archive because no registry can be pulled from."""
    trusted = [HOST_CA_BUNDLE] if HOST_CA_BUNDLE.is_file() else []
    packages = "python3,python3-venv,ca-certificates"
    wanted = content_hash(trusted, Path("/"), [DEBIAN_SUITE, DEBIAN_MIRROR, packages])

    def make() -> None:
        log = _log_for(BASE_IMAGE)
        log.parent.mkdir(parents=True, exist_ok=True)
        _say("debootstrap takes a few minutes, once per machine")
        with tempfile.TemporaryDirectory(prefix="kubetrain-rootfs-") as tmp, log.open("ab") as out:
            rootfs = Path(tmp) / "rootfs"
            argv = ["debootstrap", "--variant=minbase", f"--include={packages}", DEBIAN_SUITE, str(rootfs),
                    DEBIAN_MIRROR]
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

    return Recipe(tag=BASE_IMAGE, content_hash=wanted, make=make)


def _scratch_recipe(tag: str, name: str, produce: Callable[[Path], None], inputs: list[str]) -> Recipe:
    """A `FROM scratch` image holding one static binary, which `produce` writes to its path."""
    dockerfile = f'FROM scratch\nCOPY {name} /{name}\nENTRYPOINT ["/{name}"]\n'
    wanted = content_hash([], Path("/"), [dockerfile, *inputs])

    def make() -> None:
        with tempfile.TemporaryDirectory(prefix="kubetrain-image-") as tmp:
            context = Path(tmp)
            produce(context / name)
            (context / "Dockerfile").write_text(dockerfile)
            _docker_build(tag, context, {}, wanted)

    return Recipe(tag=tag, content_hash=wanted, make=make)


def pause_image() -> Recipe:
    """The pod sandbox image containerd's CRI names; a static build of a few lines of C."""

    def compile_pause(binary: Path) -> None:
        source = binary.with_suffix(".c")
        source.write_text(PAUSE_C)
        compiled = subprocess.run(["gcc", "-static", "-O2", "-s", "-o", str(binary), str(source)],
                                  capture_output=True, text=True)
        if compiled.returncode != 0:
            raise ImageBuildError(f"compiling pause failed: {compiled.stderr.strip()}")

    return _scratch_recipe(realnode.PAUSE_IMAGE, "pause", compile_pause, [PAUSE_C])


def coredns_image(coredns: Path, version: str) -> Recipe:
    return _scratch_recipe(f"{realnode.COREDNS_IMAGE}:{version}", "coredns",
                           lambda target: shutil.copy2(coredns, target), [version])


def operator_image(repo: Path) -> Recipe:
    """The repository's top-level Dockerfile on the locally made Debian base."""
    base = debian_python_base()
    files = _tree(repo, "Dockerfile", ".dockerignore", "pyproject.toml", "README.md", "constraints.txt",
                  "operator", "trainer-image/pyproject.toml", "trainer-image/kubetrain_trainer")
    return dockerfile_recipe(OPERATOR_IMAGE, repo, files, {"BASE": base.tag}, (base,))


def trainer_cpu_image(repo: Path) -> Recipe:
    """trainer-image/Dockerfile's CPU variant on the locally made Debian base."""
    base = debian_python_base()
    context = repo / "trainer-image"
    files = _tree(context, "Dockerfile", ".dockerignore", "pyproject.toml", "kubetrain_trainer")
    return dockerfile_recipe(TRAINER_CPU_IMAGE, context, files,
                             {"BASE": base.tag, "TORCH": TEST_TORCH, "TORCH_INDEX": TEST_TORCH_INDEX}, (base,))


def _in_registry(tag: str) -> str:
    return f"{realnode.REGISTRY_ADDRESS}/{tag}"


def _containerd_name(tag: str) -> str:
    """How kubelet names an image reference: a first component without a dot or colon is a
    Docker Hub repository (`kubetrain/trainer:x` is `docker.io/kubetrain/trainer:x`)."""
    first = tag.split("/", 1)[0]
    return tag if "/" in tag and ("." in first or ":" in first) else f"docker.io/{tag}"


def load_into_node(paths: RealNodePaths, recipe: Recipe) -> None:
    """Makes the image available to the node's pods under its own name (what `kind load
    docker-image` does), building it first if needed, unless containerd already holds it made
    from the same content. It travels through the node's registry: only layers the registry
    lacks are uploaded and only layers containerd lacks are pulled, so a change to the trainer's
    code moves one small layer, not the GBs of torch below it."""
    marker = paths.images_root / "kubetrain-loaded" / recipe.tag.replace("/", "_").replace(":", "_")
    if marker.exists() and marker.read_text() == recipe.content_hash:
        return
    ensure_built(recipe)
    _say(f"loading {recipe.tag} into the node's containerd")
    remote = _in_registry(recipe.tag)
    log = _log_for(recipe.tag)
    ctr = realnode.ctr_argv(paths)
    steps = [
        ["docker", "tag", recipe.tag, remote],
        ["docker", "push", remote],
        ["docker", "rmi", remote],  # only the extra tag; the image stays
        [*ctr, "images", "pull", "--plain-http", remote],
        [*ctr, "images", "tag", "--force", remote, _containerd_name(recipe.tag)],
    ]
    with log.open("ab") as out:
        for argv in steps:
            if subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT).returncode != 0:
                raise ImageBuildError(f"loading {recipe.tag}: `{' '.join(argv)}` failed; see {log}")
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(recipe.content_hash)
