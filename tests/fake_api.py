"""A local HTTP server standing in for the API server's status subresource: it records every
request the trainer's status reporter (and the SDK through it) sends, so their shape can be
checked without a cluster. The real path is exercised by the end-to-end tests.

With `service_account_dir` it serves HTTPS as the API server does, with a certificate for
127.0.0.1 from a CA it writes there beside a token, as a pod's service-account volume holds them:
`FakeApi.pod_env` then points code that finds its API server from the pod's environment (the
SDK's `sdk.init()`, in processes the test does not control, such as Ray Train's controller) at
the recorder."""

from __future__ import annotations

import json
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cryptography.x509.oid import ExtendedKeyUsageOID

from kubetrain import tls


@dataclass
class Captured:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class FakeApi:
    url: str
    requests: list[Captured] = field(default_factory=list)
    service_account_dir: Path | None = None

    def pod_env(self) -> dict[str, str]:
        """The variables by which a pod finds its API server and service account."""
        assert self.service_account_dir is not None, "fake_api(service_account_dir=...) serves HTTPS"
        return {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": str(urlsplit(self.url).port),
                "KUBETRAIN_SERVICEACCOUNT_DIR": str(self.service_account_dir)}


def _serving_context(directory: Path) -> ssl.SSLContext:
    """A CA (ca.crt) and a token in `directory`; the server's key and certificate beside them."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_cert, ca_key = tls.self_signed_ca("fake-api-ca")
    key = tls.new_key()
    cert = tls.issue(tls.name("fake-api"), key.public_key(), ca_cert.subject, ca_key,
                     usages=[ExtendedKeyUsageOID.SERVER_AUTH], hosts=["127.0.0.1"])
    tls.write_cert(directory / "ca.crt", ca_cert)
    tls.write_cert(directory / "server.crt", cert)
    tls.write_key(directory / "server.key", key)
    (directory / "token").write_text("fake-token\n")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(directory / "server.crt", directory / "server.key")
    return context


@contextmanager
def fake_api(service_account_dir: Path | None = None) -> Iterator[FakeApi]:
    fake = FakeApi(url="", service_account_dir=service_account_dir)

    class Handler(BaseHTTPRequestHandler):
        def do_PATCH(self) -> None:  # noqa: N802 (http.server's naming)
            parts = urlsplit(self.path)
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            fake.requests.append(Captured("PATCH", parts.path, parse_qs(parts.query), dict(self.headers), body))
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    scheme = "http"
    if service_account_dir is not None:
        server.socket = _serving_context(service_account_dir).wrap_socket(server.socket, server_side=True)
        scheme = "https"
    fake.url = f"{scheme}://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
