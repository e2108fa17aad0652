"""README.md and docs/ link only to files that exist in this repository.

Every relative Markdown link (`[text](path)`, `[text](path#anchor)`) must name a file or folder of the
checkout, resolved from the page that holds it; web links and in-page anchors are not checked here.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
CODE = re.compile(r"```.*?```|`[^`\n]*`", re.DOTALL)  # code blocks and spans hold no links (a regex may look like one)
EXTERNAL = ("http://", "https://", "mailto:", "#")


def relative_links(text: str) -> list[str]:
    """The targets of the Markdown links in `text` that point into the repository (anchors cut off)."""
    targets = []
    for match in LINK.finditer(CODE.sub("", text)):
        target = match.group(1)
        if not target.startswith(EXTERNAL):
            targets.append(target.split("#", 1)[0])
    return targets


def broken_links(page: Path) -> list[str]:
    return [t for t in relative_links(page.read_text(encoding="utf-8")) if t and not (page.parent / t).exists()]


def test_the_link_finder_sees_relative_links_and_skips_web_links_and_anchors():
    text = ("See [the guide](docs/run.md#speed), [AWS](https://docs.aws.amazon.com/x), [top](#top), "
            '[a file](<docs/image.md> "title"), `[a-z](-*[a-z])` and [gone](design.md).')
    assert relative_links(text) == ["docs/run.md", "docs/image.md", "design.md"]


def test_a_missing_target_is_reported(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("[here](here.md) and [missing](../nowhere/missing.md)")
    (tmp_path / "here.md").write_text("")
    assert broken_links(page) == ["../nowhere/missing.md"]


@pytest.mark.parametrize("page", PAGES, ids=[p.relative_to(REPO).as_posix() for p in PAGES])
def test_docs_link_only_to_files_that_exist(page):
    assert broken_links(page) == [], f"{page.relative_to(REPO)} links to files that are not in the repository"
