#!/usr/bin/env bash
# Creates .venv (once) and installs kubetrain with its trainer, Ray and test extras, every package
# at the version pinned in constraints.txt (`make lock` refreshes it). Re-running is cheap: the
# install is skipped while pyproject.toml and constraints.txt are unchanged since the last one.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
venv="$root/.venv"
stamp="$venv/.kubetrain-installed"
want="$(cat pyproject.toml constraints.txt | sha256sum | cut -d' ' -f1)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then exit 0; fi
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q --upgrade pip uv
echo "[bootstrap] installing kubetrain[trainer,ray,dev] into $venv (first run downloads torch and ray)" >&2
VIRTUAL_ENV="$venv" "$venv/bin/uv" pip install -q --python "$venv/bin/python" -c constraints.txt -e ".[trainer,ray,dev]"
echo "$want" > "$stamp"
