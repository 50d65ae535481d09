"""The README and docs/ link only to files that exist inside the repository."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import REPO

DOCUMENTS = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
# [text](target) and <target> links, and paths written as code that look like files of the repository.
MARKDOWN_LINK = re.compile(r"\]\(([^)\s]+)\)")
OUTSIDE = re.compile(r"\.\./shared|\.\./\.\./")


def relative_targets(text: str) -> list[str]:
    targets = []
    for target in MARKDOWN_LINK.findall(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue  # https:, mailto:, an anchor on the same page
        targets.append(target.split("#", 1)[0])
    return targets


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: str(path.relative_to(REPO)))
def test_every_relative_link_resolves_inside_the_repository(document: Path) -> None:
    text = document.read_text(encoding="utf-8")
    broken = []
    for target in relative_targets(text):
        resolved = (document.parent / target).resolve()
        if not resolved.is_relative_to(REPO) or not resolved.exists():
            broken.append(target)
    assert not broken, f"{document.name}: links that do not resolve inside the repository: {broken}"
    assert not OUTSIDE.search(text), f"{document.name} points outside the repository"


def test_the_checker_finds_a_broken_link() -> None:
    """The scanner itself: a missing file and a link out of the repository are both reported."""
    assert relative_targets("see [map](docs/architecture.md#layout) and [x](https://example.com)") == [
        "docs/architecture.md"
    ]
    assert relative_targets("[gone](nowhere.md) [up](../shared/design/X.md)") == [
        "nowhere.md",
        "../shared/design/X.md",
    ]


def test_docs_hold_the_architecture_map() -> None:
    assert (REPO / "docs" / "architecture.md").is_file()
