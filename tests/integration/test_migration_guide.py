"""docs/migrating-from-0.1.5.md: linked from the README, and every link it makes resolves."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "migrating-from-0.1.5.md"
LINK = re.compile(r"\]\(([^)#\s]+)(?:#([^)\s]+))?\)")


def _anchors(path: Path) -> set[str]:
    """GitHub's anchors of the headings of a markdown file."""
    anchors = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            anchors.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return anchors


def test_the_readme_links_the_guide() -> None:
    assert "](docs/migrating-from-0.1.5.md)" in (ROOT / "README.md").read_text(encoding="utf-8")


def test_every_link_of_the_guide_resolves() -> None:
    links = LINK.findall(GUIDE.read_text(encoding="utf-8"))
    assert len(links) >= 5  # the pattern finds them
    for target, anchor in links:
        path = (GUIDE.parent / target).resolve()
        assert path.is_file(), f"{GUIDE.name} links to missing {target}"
        if anchor:
            assert anchor in _anchors(path), f"{GUIDE.name} links to missing #{anchor} of {target}"
