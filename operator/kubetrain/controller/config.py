"""The operator's own configuration (flags / environment / Helm values), validated up front so a
bad value stops the operator at start with a clear message instead of failing jobs later."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from kubetrain.api.nodepools import default_catalogue, load_catalogue
from kubetrain.plan.decision import PlanInputs
from kubetrain.policy.residency.evaluate import DefaultResidency
from kubetrain.render.settings import RenderSettings

DEFAULT_TRAINER_IMAGE = "ghcr.io/kubetrain/trainer:0.1.0"
WEBHOOK_CONFIGURATION = "kubetrain-residency.kubetrain.io"


class WebhookService(BaseModel):
    """The Service in front of the webhook in a cluster: the API server calls it by reference,
    which works where the API server cannot resolve cluster DNS names (kind, most managed
    clusters)."""

    model_config = ConfigDict(frozen=True)

    namespace: str
    name: str
    port: int = Field(default=443, ge=1, le=65535, description="The Service's port (not the pod's).")

    @classmethod
    def parse(cls, value: str, port: int) -> WebhookService:
        """`NAMESPACE/NAME`, as given to --webhook-service."""
        namespace, _, name = value.partition("/")
        if not namespace or not name or "/" in name:
            raise ValueError(f"--webhook-service {value!r}: expected NAMESPACE/NAME, e.g. kubetrain/kubetrain-webhook")
        return cls(namespace=namespace, name=name, port=port)

    def dns_names(self) -> list[str]:
        """The names the API server verifies the serving certificate against."""
        return [f"{self.name}.{self.namespace}.svc", f"{self.name}.{self.namespace}.svc.cluster.local"]


class WebhookConfig(BaseModel):
    """Where the validating webhook listens and how the API server reaches it. Its
    ValidatingWebhookConfiguration is created and kept up to date by the operator (kopf)."""

    model_config = ConfigDict(frozen=True)

    address: str = Field(default="0.0.0.0", description="Listening address.")
    port: int = Field(default=9443, ge=1, le=65535, description="Listening port (HTTPS).")
    host: str = Field(
        default="127.0.0.1",
        description="Host name the API server calls (the webhook Service's DNS name in a cluster); "
        "it must be in the serving certificate.",
    )
    cert_dir: Path = Field(
        description="ca.crt, tls.crt and tls.key; generated there (a private CA) when tls.crt is missing."
    )
    configuration_name: str = Field(
        default=WEBHOOK_CONFIGURATION, description="Name of the ValidatingWebhookConfiguration."
    )
    service: WebhookService | None = Field(
        default=None, description="Register the Service instead of https://host:port (in a cluster)."
    )


class LeaderElectionConfig(BaseModel):
    """Which replica acts: the holder of one coordination.k8s.io Lease (see controller/leadership).

    The defaults are controller-runtime's: a leader that cannot renew for renewDeadline stops
    acting, and only after leaseDuration without a renewal does a standby take over, so the gap
    between the two (5 s) is the margin in which no two replicas act at once."""

    model_config = ConfigDict(frozen=True)

    namespace: str = Field(description="Namespace of the Lease (the operator's own).")
    lease_name: str = Field(default="kubetrain-operator", description="Name of the Lease.")
    identity: str = Field(min_length=1, description="This replica's name in the Lease (the pod's name).")
    lease_duration_seconds: float = Field(
        default=15.0, gt=0, description="How long a standby waits after the last renewal it saw before taking over."
    )
    renew_deadline_seconds: float = Field(
        default=10.0, gt=0, description="How long the leader keeps acting without a successful renewal."
    )
    retry_period_seconds: float = Field(
        default=2.0, gt=0, description="Interval of renewals (leader) and attempts to acquire (standby)."
    )

    @model_validator(mode="after")
    def _ordered(self) -> LeaderElectionConfig:
        if not self.retry_period_seconds < self.renew_deadline_seconds < self.lease_duration_seconds:
            raise ValueError(
                f"leader election needs retryPeriod < renewDeadline < leaseDuration, got "
                f"{self.retry_period_seconds:g}s, {self.renew_deadline_seconds:g}s, {self.lease_duration_seconds:g}s: "
                f"a leader must stop acting before a standby may take over"
            )
        return self


class OperatorConfig(BaseModel):
    model_config = ConfigDict(frozen=True)

    namespaces: list[str] = Field(
        default_factory=list, description="Namespaces to watch; empty means the whole cluster."
    )
    node_pools_file: Path | None = Field(
        default=None,
        description="YAML node-pool catalogue; the built-in catalogue matches the dev cluster.",
    )
    default_image: str = Field(default=DEFAULT_TRAINER_IMAGE, description="Trainer image for jobs without spec.image.")
    liveness_port: int = Field(default=8080, ge=1, le=65535, description="Port of kopf's /healthz endpoint.")
    metrics_port: int = Field(
        default=8081, ge=0, le=65535, description="Port of the Prometheus /metrics endpoint; 0 serves none."
    )
    leader_election: LeaderElectionConfig | None = Field(
        default=None,
        description="Replicas elect one leader that reconciles; the others stand by (and serve admission). "
        "None: this process acts alone (one replica, or a local run).",
    )
    log_format: Literal["text", "json"] = "text"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    watch_server_timeout: int = Field(
        default=300, ge=10, description="Seconds the API server keeps one watch open; kopf re-watches after."
    )
    watch_client_timeout: int = Field(
        default=330, ge=10, description="Client-side cap on one watch request, so a silently dead watch ends."
    )
    default_residency: DefaultResidency = Field(
        default=DefaultResidency.ALLOW_ALL,
        description="What jobs in a namespace no DataResidencyPolicy selects get: allow-all or deny-all.",
    )
    webhook: WebhookConfig | None = Field(
        default=None, description="The residency admission webhook; None serves none."
    )
    gang_scheduling: Literal["auto", "off"] = Field(
        default="auto",
        description="auto: where the cluster serves scheduling.k8s.io/v1beta1 PodGroups, each attempt of a job "
        "(runPolicy.gangScheduling Auto) gets one, so kube-scheduler binds all its pods or none; off: never.",
    )

    def catalogue_yaml(self) -> object | None:
        if self.node_pools_file is None:
            return None
        document: object = yaml.safe_load(self.node_pools_file.read_text())
        return document

    def plan_inputs(self, pod_groups_served: bool = False) -> PlanInputs:
        """The planner's cluster-independent inputs, as this configuration sets them;
        `pod_groups_served`: what discovery found at start (controller/gang.py)."""
        document = self.catalogue_yaml()
        catalogue = default_catalogue() if document is None else load_catalogue(document)
        gang = pod_groups_served and self.gang_scheduling == "auto"
        return PlanInputs(
            catalogue=catalogue,
            render=RenderSettings(default_image=self.default_image, gang_scheduling=gang),
            default_residency=self.default_residency,
        )
