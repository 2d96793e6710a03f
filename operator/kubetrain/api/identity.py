"""The API identity each top-level model carries as `api_info` (like lightkube's `_api_info`): the
CRDs (api/crd.py), the API client (controller/kube.py), the kopf handlers and the RBAC the
children get (render/access.py) all derive group, version, kind and plural from the model."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from kubetrain.api.contract import GROUP, VERSION


class ApiInfo(BaseModel):
    """One kind's names, as a CRD's spec.names spells them, in the operator's group and version."""

    model_config = ConfigDict(frozen=True)

    kind: str
    plural: str
    singular: str
    short_names: tuple[str, ...]
    group: str = GROUP
    version: str = VERSION

    @property
    def api_version(self) -> str:
        """`group/version`, as apiVersion and the API's /apis/ paths spell it."""
        return f"{self.group}/{self.version}"
