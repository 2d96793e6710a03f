"""kopf logs in with the operator client's own server and credentials."""

from __future__ import annotations

import kubernetes

from kubetrain.controller.handlers import connection_info


def test_a_service_account_token_and_the_service_host_are_passed_as_the_client_has_them() -> None:
    configuration = kubernetes.client.Configuration(host="https://10.96.0.1:443")
    configuration.api_key["BearerToken"] = "bearer abc.def"
    configuration.ssl_ca_cert = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"
    refreshed: list[bool] = []
    configuration.refresh_api_key_hook = lambda _: refreshed.append(True)
    info = connection_info(configuration)
    assert (info.server, info.scheme, info.token) == ("https://10.96.0.1:443", "bearer", "abc.def")
    assert info.ca_path == configuration.ssl_ca_cert and not info.insecure
    assert refreshed, "a rotated token is read again through the client's refresh hook"


def test_a_kubeconfig_client_certificate_is_passed_without_a_token() -> None:
    configuration = kubernetes.client.Configuration(host="https://127.0.0.1:6443")
    configuration.cert_file, configuration.key_file = "/tmp/client.crt", "/tmp/client.key"
    info = connection_info(configuration)
    assert (info.certificate_path, info.private_key_path) == ("/tmp/client.crt", "/tmp/client.key")
    assert info.token is None and info.scheme is None
