"""The Go sources build_binaries.sh writes from heredocs (the tools file, etcd's wrapper main) are Go: a cached
binary hides a broken one until a machine without the cache builds it, so gofmt parses them here."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "operator" / "kubetrain" / "devcluster" / "build_binaries.sh"
HEREDOC = re.compile(r"cat > \"\$work/(?P<file>[\w.]+\.go)\" <<'GO'\n(?P<source>.*?)\nGO\n", re.DOTALL)
# Go builds the control plane here, so it is on every machine the suite runs on.
GOFMT = shutil.which("gofmt") or "/usr/local/go/bin/gofmt"


def go_sources(script: str) -> dict[str, str]:
    return {match["file"]: match["source"] for match in HEREDOC.finditer(script)}


def parse_errors(source: str, directory: Path) -> str:
    path = directory / "source.go"
    path.write_text(source + "\n")
    return subprocess.run([GOFMT, "-e", "-l", str(path)], capture_output=True, text=True).stderr


def test_the_heredoc_go_sources_parse(tmp_path: Path) -> None:
    sources = go_sources(SCRIPT.read_text())
    assert {"tools.go", "main.go"} <= set(sources)
    assert {name: parse_errors(source, tmp_path) for name, source in sources.items()} == dict.fromkeys(sources, "")


def test_a_shell_function_pasted_into_the_go_source_is_found(tmp_path: Path) -> None:
    pasted = 'build_x() {\n  local v=$X # shell\n}\n\nfunc main()'
    broken = go_sources(SCRIPT.read_text())["main.go"].replace("func main()", pasted)
    assert "illegal character U+0024 '$'" in parse_errors(broken, tmp_path)
