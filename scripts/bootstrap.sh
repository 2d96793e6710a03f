#!/usr/bin/env bash
# Creates .venv (once) and installs kubetrain with its trainer, Ray and test extras. Re-running is
# cheap: the install is skipped while pyproject.toml is unchanged since the last successful one.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
venv="$root/.venv"
stamp="$venv/.kubetrain-installed"
want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then exit 0; fi
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q --upgrade pip uv
echo "[bootstrap] installing kubetrain[trainer,ray,dev] into $venv (first run downloads torch and ray)" >&2
VIRTUAL_ENV="$venv" "$venv/bin/uv" pip install -q --python "$venv/bin/python" -e ".[trainer,ray,dev]"
echo "$want" > "$stamp"
