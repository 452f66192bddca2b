"""The README and docs/ read right: links resolve, tables stay narrow, the two commands hold."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

#: The README's two commands; CI (`.ci/run`) runs the second one as written.
INSTALL_AND_RUN = (
    'python3 -m venv .venv && .venv/bin/pip install -e ".[dev]" && '
    ".venv/bin/kedro run --pipelines training"
)
TEST_COMMAND = ".venv/bin/python -m pytest"
MAX_TABLE_ROW = 200

LINK = re.compile(r"!?\[(?P<text>[^\]]*)\]\((?P<target>[^)\s]+)\)")
INLINE_CODE = re.compile(r"`[^`]*`")
FENCE = re.compile(r"^\s*(```|~~~)")


def prose_lines(text: str) -> list[tuple[int, str]]:
    """``(line number, line)`` of the lines outside fenced code blocks."""
    lines, fenced = [], False
    for number, line in enumerate(text.splitlines(), start=1):
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            lines.append((number, line))
    return lines


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading: markup dropped, lower case, punctuation removed,
    spaces to hyphens (``§12 Training speed on CPU`` -> ``12-training-speed-on-cpu``)."""
    text = re.sub(r"`([^`]*)`", r"\1", heading)
    text = LINK.sub(lambda match: match["text"], text)
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """Every heading anchor of ``page``, with GitHub's ``-1``, ``-2`` suffixes for repeats."""
    seen: dict[str, int] = {}
    for _, line in prose_lines(page.read_text(encoding="utf-8")):
        match = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not match:
            continue
        slug = github_slug(match[1])
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        if count:
            seen[f"{slug}-{count}"] = 1
    return set(seen)


def relative_links(page: Path) -> list[tuple[int, str]]:
    """``(line number, target)`` of every link that is not a URL, outside code."""
    links = []
    for number, line in prose_lines(page.read_text(encoding="utf-8")):
        for match in LINK.finditer(INLINE_CODE.sub("", line)):
            target = match["target"]
            if not re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:, ...
                links.append((number, target))
    return links


def broken_link(page: Path, target: str) -> str | None:
    """Why ``target`` (a link on ``page``) does not resolve, or None."""
    path_part, _, anchor = target.partition("#")
    linked = (page.parent / path_part).resolve() if path_part else page
    shown = linked.relative_to(ROOT) if linked.is_relative_to(ROOT) else linked
    if not linked.exists():
        return f"no file {shown}"
    if anchor and linked.suffix == ".md" and anchor not in anchors(linked):
        return f"no heading #{anchor} in {shown}"
    return None


def test_pages_exist():
    names = {page.name for page in PAGES}
    assert {"README.md", "benchmarks.md", "design.md", "architecture.md"} <= names


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_every_relative_link_and_anchor_resolves(page: Path):
    broken = [
        f"{page.name}:{number}: ({target}) {why}"
        for number, target in relative_links(page)
        if (why := broken_link(page, target))
    ]
    assert not broken, "\n".join(broken)


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_no_table_row_is_wider_than_200_characters(page: Path):
    wide = [
        f"{page.name}:{number}: {len(line.strip())} characters"
        for number, line in prose_lines(page.read_text(encoding="utf-8"))
        if line.lstrip().startswith("|") and len(line.strip()) > MAX_TABLE_ROW
    ]
    assert not wide, "\n".join(wide)


def test_readme_holds_the_two_commands_verbatim():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert INSTALL_AND_RUN in readme
    assert f"\n{TEST_COMMAND}\n" in readme


def test_github_slug_matches_github_for_section_headings():
    assert github_slug("§12 Training speed on CPU") == "12-training-speed-on-cpu"
    assert github_slug("§5 Data (`yolo/data/`)") == "5-data-yolodata"
    assert github_slug("Multi-GPU and multi-node training") == "multi-gpu-and-multi-node-training"


def test_a_missing_file_or_heading_is_reported(tmp_path: Path):
    page = tmp_path / "page.md"
    page.write_text("# Title\n\n[ok](#title) [bad](#nope) [gone](missing.md)\n", encoding="utf-8")
    targets = [target for _, target in relative_links(page)]
    assert targets == ["#title", "#nope", "missing.md"]
    assert broken_link(page, "#title") is None
    assert "no heading #nope" in broken_link(page, "#nope")
    assert "no file" in broken_link(page, "missing.md")
