"""The README stays a five-minute read, and no link in it or in docs/ points nowhere: a moved file
or a renamed heading fails here rather than in a reader's browser."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = [ROOT / "README.md", ROOT / "bench" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)


def anchors(document: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces as hyphens."""
    headings = re.findall(r"^#+\s+(.+?)\s*$", FENCE.sub("", document.read_text()), re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-") for heading in headings}


def links(document: Path) -> list[str]:
    return LINK.findall(FENCE.sub("", document.read_text()))


def broken(document: Path) -> list[str]:
    found = []
    for target in links(document):
        if re.match(r"[a-z]+://|mailto:", target):
            continue
        path, _, anchor = target.partition("#")
        resolved = (document.parent / path).resolve() if path else document
        if not resolved.exists():
            found.append(f"{target}: no such file")
        elif anchor and (resolved.is_dir() or anchor not in anchors(resolved)):
            found.append(f"{target}: no heading with anchor #{anchor}")
    return found


def test_readme_is_short() -> None:
    assert len((ROOT / "README.md").read_text().splitlines()) < 200


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: str(path.relative_to(ROOT)))
def test_every_link_resolves(document: Path) -> None:
    assert broken(document) == []


def test_every_document_is_linked_from_the_readme() -> None:
    linked = {(ROOT / target.partition("#")[0]).resolve() for target in links(ROOT / "README.md")}
    assert [path.name for path in DOCUMENTS[2:] if path.resolve() not in linked] == []


def test_a_broken_link_is_found(tmp_path: Path) -> None:
    document = tmp_path / "doc.md"
    (tmp_path / "other.md").write_text("# A heading\n")
    document.write_text("[ok](other.md#a-heading) [gone](missing.md) [anchor](other.md#nope)\n```\n[x](y)\n```\n")
    assert broken(document) == ["missing.md: no such file", "other.md#nope: no heading with anchor #nope"]
