"""crds/ and the Helm chart's crds/ must be exactly what the models generate, so the API server
enforces what the operator parses however the CRDs were installed."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubetrain.api.crd import check_crds, rendered_crds, write_crds
from kubetrain.cli import CRD_DIRS

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("directory", CRD_DIRS, ids=str)
def test_committed_crds_match_the_models(directory: Path) -> None:
    drift = check_crds(ROOT / directory)
    assert not drift, f"{directory} is out of date; run `kubetrain crds generate`:\n" + "\n".join(drift)


def test_check_reports_missing_changed_and_stale_files(tmp_path: Path) -> None:
    assert check_crds(tmp_path) == [f"{tmp_path / name}: missing" for name in rendered_crds()]
    written, *others = write_crds(tmp_path)
    assert {written.name, *(p.name for p in others)} == {
        f"kubetrain.io_{plural}.yaml"
        for plural in ("trainingjobs", "dataresidencypolicies", "modelversions", "models", "trainingschedules",
                       "trainingsweeps", "budgetpolicies")
    }
    assert check_crds(tmp_path) == []
    written.write_text(written.read_text().replace("tj", "tjx"))
    (tmp_path / "kubetrain.io_gone.yaml").write_text("{}")
    drift = check_crds(tmp_path)
    assert any("differs" in line for line in drift) and any("no model generates it" in line for line in drift)
