"""The trainer's dependencies have one source, its own package (trainer-image/pyproject.toml,
which the image builds from alone): the root pyproject.toml repeats them in its `trainer` and
`ray` extras, with the differences written down here, and this fails when the two drift."""

from __future__ import annotations

import tomllib
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]


def project(path: Path) -> dict[str, object]:
    loaded: dict[str, object] = tomllib.loads(path.read_text())["project"]
    return loaded


def requirements(texts: object) -> set[str]:
    assert isinstance(texts, list)
    return {str(Requirement(text)) for text in texts}


ROOT_PROJECT = project(ROOT / "pyproject.toml")
TRAINER_PROJECT = project(ROOT / "trainer-image" / "pyproject.toml")
ROOT_EXTRAS = ROOT_PROJECT["optional-dependencies"]
TRAINER_EXTRAS = TRAINER_PROJECT["optional-dependencies"]
assert isinstance(ROOT_EXTRAS, dict) and isinstance(TRAINER_EXTRAS, dict)


def test_the_trainer_extra_is_the_trainer_packages_dependencies_plus_torch() -> None:
    # torch: the image keeps its base image's build (trainer-image/Dockerfile), so only here.
    expected = requirements(TRAINER_PROJECT["dependencies"]) | {"torch>=2.3"}
    assert requirements(ROOT_EXTRAS["trainer"]) == expected, "edit both pyproject.toml files"


def test_the_ray_extra_is_the_trainer_packages_less_rays_default_extra() -> None:
    # The local node runs Ray heads without the dashboard and Ray Client (devcluster/localnode/rayports.py).
    expected = set()
    for requirement in map(Requirement, TRAINER_EXTRAS["ray"]):
        requirement.extras.discard("default")
        expected.add(str(requirement))
    assert requirements(ROOT_EXTRAS["ray"]) == expected, "edit both pyproject.toml files"


def test_every_trainer_extra_has_its_counterpart_or_a_reason() -> None:
    # remote (s3fs, gcsfs): the image's only; local runs use file:// paths, and fsspec, the part the
    # operator uses too, is a root dependency at the same bound.
    assert set(TRAINER_EXTRAS) - set(ROOT_EXTRAS) == {"remote"}
    fsspec = [r for r in requirements(TRAINER_EXTRAS["remote"]) if r.startswith("fsspec")]
    assert fsspec and set(fsspec) <= requirements(ROOT_PROJECT["dependencies"])
