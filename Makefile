# The two commands the README starts with, plus helpers. Every target sets itself up: the
# virtualenv and Python deps (scripts/bootstrap.sh) and the cached control-plane binaries.
PY := .venv/bin/python
KUBETRAIN := .venv/bin/kubetrain

.PHONY: demo test unit lint bootstrap binaries kueue dev-up dev-down crds lock kind-demo images

bootstrap:
	@bash scripts/bootstrap.sh

binaries: bootstrap
	@$(PY) -c "from kubetrain.devcluster.binaries import ensure_binaries; ensure_binaries()"

## kueue: Kueue's manager, CRDs and webhooks for the Kueue tests, built once per machine (~10 min cold),
## before the suite rather than inside a test's time limit
kueue: bootstrap
	@$(PY) -c "from kubetrain.devcluster.binaries import ensure_kueue; ensure_kueue()"

## demo: the main job (local cluster + operator + example TrainingJob to completion)
demo: binaries
	@bash scripts/demo.sh

## test: lint, then the whole test suite (unit + real control plane + real training)
test: lint binaries kueue
	@$(PY) -m pytest tests

## lint: import sorting and lint (ruff), types (mypy, strict), and the layers (import-linter contracts)
lint: bootstrap
	@.venv/bin/ruff check operator trainer-image tests bench
	@.venv/bin/mypy
	@.venv/bin/lint-imports

unit: bootstrap
	@$(PY) -m pytest tests/unit tests/training -q

## kind-demo: kubetrain on a kind cluster (needs docker, kind, kubectl, helm and internet)
kind-demo:
	@bash scripts/kind-demo.sh

## images: build the operator and the CPU trainer image here (no registry: a debootstrap base)
images: bootstrap
	@$(PY) -c "from pathlib import Path; from kubetrain.devcluster import host, images; \
		from kubetrain.devcluster.binaries import cache_dir; logs = cache_dir() / 'images' / 'logs'; \
		host.ensure_packages(logs / 'apt-get.log'); host.ensure_docker(logs / 'dockerd.log'); \
		print(images.ensure_built(images.operator_image(Path('.'))), images.ensure_built(images.trainer_cpu_image(Path('.'))))"

## crds: regenerate crds/ and the chart's copies from the API models (a test fails on drift)
crds: bootstrap
	@$(KUBETRAIN) crds generate

dev-up: binaries
	@$(KUBETRAIN) dev up

dev-down: bootstrap
	@$(KUBETRAIN) dev down

## lock: re-resolve constraints.txt (every Python package, pinned) after changing pyproject.toml
lock: bootstrap
	@.venv/bin/uv pip compile pyproject.toml --extra trainer --extra ray --extra dev --python .venv/bin/python \
		--quiet --output-file constraints.txt --custom-compile-command "make lock"
