"""What a real node needs from the host: Debian packages, a running Docker Engine (to build the
project's images), IP forwarding, and the address pods reach the host on.

Set-up happens here rather than in a README step so `make test` works on a fresh machine: as
root, missing packages are installed from Debian's archive and dockerd is started; otherwise the
error says exactly what to install.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

# Debian package -> an executable it provides (the check for "installed").
PACKAGES: dict[str, str] = {
    "docker.io": "/usr/sbin/dockerd",
    "containerd": "/usr/bin/containerd",
    "runc": "/usr/sbin/runc",
    "containernetworking-plugins": "/usr/lib/cni/bridge",
    "debootstrap": "/usr/sbin/debootstrap",
    "iptables": "/usr/sbin/iptables",
    "conntrack": "/usr/sbin/conntrack",
}
CNI_BIN_DIR = Path("/usr/lib/cni")
DOCKER_SOCKET = Path("/var/run/docker.sock")


class HostNotReady(RuntimeError):
    """The host lacks something a real node needs; the message says what and how to fix it."""


def missing_packages() -> list[str]:
    return [package for package, path in PACKAGES.items() if not Path(path).exists()]


def ensure_packages(log_path: Path) -> None:
    """Installs the Debian packages a real node needs, when missing and when running as root."""
    missing = missing_packages()
    if not missing:
        return
    if os.geteuid() != 0:
        raise HostNotReady(
            "a real node needs these Debian packages, and only root may install them: "
            f"run `sudo apt-get install -y {' '.join(missing)}`, then run this again as root "
            "(kubelet, containerd and kube-proxy need root)"
        )
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    with log_path.open("ab") as log:
        for argv in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *missing]):
            if subprocess.run(argv, stdout=log, stderr=subprocess.STDOUT, env=env).returncode != 0:
                raise HostNotReady(f"`{' '.join(argv)}` failed; see {log_path}")


def require_root() -> None:
    if os.geteuid() != 0:
        raise HostNotReady("a real node runs kubelet, containerd and kube-proxy, which need root: run as root")


def docker_running() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "info"], capture_output=True).returncode == 0


def ensure_docker(log_path: Path, timeout: float = 60.0) -> None:
    """Starts dockerd (detached, logging to `log_path`) unless a Docker Engine already answers."""
    if docker_running():
        return
    require_root()
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        subprocess.Popen(
            ["/usr/sbin/dockerd", f"--host=unix://{DOCKER_SOCKET}"],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if docker_running():
            return
        time.sleep(0.5)
    raise HostNotReady(f"dockerd did not answer within {timeout:.0f}s; see {log_path}")


def enable_forwarding() -> None:
    """Pods on the node's bridge reach Services and the API server through the host's routing."""
    Path("/proc/sys/net/ipv4/ip_forward").write_text("1\n")


def host_address() -> str:
    """The host's own address on its default route: what kubelet registers as the node's
    InternalIP and what pods reach the API server on (loopback is refused by both)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.connect(("192.0.2.123", 9))  # no packet is sent: connect() only picks a route
        address = str(sock.getsockname()[0])
    if address.startswith("127."):
        raise HostNotReady("the host has no non-loopback IPv4 address; a real node needs one")
    return address
