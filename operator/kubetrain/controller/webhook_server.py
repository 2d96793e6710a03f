"""The HTTPS server of the residency webhook, and what kopf writes into the webhook
configuration's clientConfig: a URL (an operator outside the cluster) or a Service reference (in
a cluster, behind the chart's webhook Service)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import kopf

from kubetrain.controller.config import WebhookConfig, WebhookService
from kubetrain.controller.webhook_certs import ensure_certs
from kubetrain.controller.webhook_scope import SizedWebhookServer, install


class ServiceWebhookServer(SizedWebhookServer):
    """kopf's server, registered as `service: {namespace, name, port}`: the API server resolves
    the Service itself instead of a DNS name it may not be able to look up."""

    def __init__(self, service: WebhookService, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.service = service

    async def __call__(self, fn: kopf.WebhookFn) -> AsyncIterator[kopf.WebhookClientConfig]:
        async for config in super().__call__(fn):
            yield service_client_config(config, self.service)


def service_client_config(config: kopf.WebhookClientConfig, service: WebhookService) -> kopf.WebhookClientConfig:
    """kopf's URL client config turned into a Service reference; kopf appends the handler id to
    `service.path` as it does to the URL."""
    reference = kopf.WebhookClientConfig(
        service={"namespace": service.namespace, "name": service.name, "port": service.port, "path": ""}
    )
    if "caBundle" in config:
        reference["caBundle"] = config["caBundle"]
    return reference


# How often kopf re-reads the certificate files; when they change (renewed by the operator, or
# a mounted Secret updated by its issuer) it serves the new ones and registers the new CA bundle.
CERT_FILE_CHECK_SECONDS = 10.0


def webhook_hosts(config: WebhookConfig) -> list[str]:
    """The names the serving certificate is made for."""
    hosts = [*config.service.dns_names()] if config.service is not None else []
    return list(dict.fromkeys([*hosts, config.host, "localhost", "127.0.0.1"]))


def webhook_server(config: WebhookConfig) -> kopf.WebhookServer:
    """HTTPS with the cert dir's certificate; its CA goes into the webhook configuration's
    caBundle, so the API server verifies the operator it calls. The webhooks are registered
    scoped to the requests they judge, with a body limit for two whole objects (webhook_scope)."""
    install()
    certs = ensure_certs(config.cert_dir, webhook_hosts(config))
    options: dict[str, Any] = {
        "addr": config.address,
        "port": config.port,
        "host": config.host,
        "certfile": str(certs.cert),
        "pkeyfile": str(certs.key),
        "cafile": str(certs.ca),
        "file_check_interval": CERT_FILE_CHECK_SECONDS,
    }
    if config.service is not None:
        return ServiceWebhookServer(config.service, **options)
    return SizedWebhookServer(**options)
