"""The documentation a newcomer meets: a short README that links every docs page, links that lead
somewhere, the licence, and the entry for the WebUI's extension index."""

from __future__ import annotations

import datetime
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README_MAX_LINES = 260

# Pages other helpers are writing this round; the README already links them. The lead empties this
# set when their branches are merged (a page here that exists already fails the test below).
PAGES_BEING_WRITTEN: set[str] = set()

# The tags the index accepts: tags.json of AUTOMATIC1111/stable-diffusion-webui-extensions, less
# "installed", which the WebUI sets itself.
INDEX_TAGS = {
    "script", "localization", "tab", "dropdown", "ads", "training", "models", "UI related", "prompting",
    "editing", "manipulations", "online", "animation", "query", "science", "extras",
}  # fmt: skip

LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def markdown_files(root: Path) -> list[Path]:
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def prose_lines(text: str) -> list[str]:
    """The lines outside fenced code blocks, with inline code removed (links in code are not links;
    a code span may go on over a line break)."""
    lines, fenced = [], False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
            lines.append("")
        elif not fenced:
            lines.append(line)
    return re.sub(r"`[^`]*`", "", "\n".join(lines)).splitlines()


def anchors(text: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens, repeats numbered."""
    seen: dict[str, int] = {}
    result = set()
    fenced = False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        match = None if fenced else re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if match:
            slug = re.sub(r"[^\w\- ]", "", match.group(1).lower()).replace(" ", "-")
            count = seen.get(slug, 0)
            seen[slug] = count + 1
            result.add(slug if count == 0 else f"{slug}-{count}")
    return result


def relative_links(path: Path) -> list[str]:
    links = [m.group(1) for line in prose_lines(path.read_text(encoding="utf-8")) for m in LINK.finditer(line)]
    return [link for link in links if not re.match(r"[a-z][a-z0-9+.-]*:", link, re.IGNORECASE)]


def broken_links(root: Path, being_written: set[str] = frozenset()) -> list[str]:
    """Every relative link of the README and docs/*.md whose file (or heading) does not exist."""
    problems = []
    for source in markdown_files(root):
        for link in relative_links(source):
            target_text, _, anchor = link.partition("#")
            target = (source.parent / target_text).resolve() if target_text else source
            name = target.relative_to(root.resolve()).as_posix() if target.is_relative_to(root.resolve()) else link
            if not target.exists():
                if name not in being_written:
                    problems.append(f"{source.relative_to(root)}: {link}: no such file")
            elif anchor and target.suffix == ".md" and anchor not in anchors(target.read_text(encoding="utf-8")):
                problems.append(f"{source.relative_to(root)}: {link}: no heading with that anchor")
    return problems


def code_block(text: str, heading: str) -> str:
    return text.split(heading, 1)[1].split("```bash", 1)[1].split("```", 1)[0].strip()


def test_readme_is_short():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").count("\n")
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines; move reference material to docs/"


def test_readme_links_every_docs_page():
    linked = {
        (ROOT / link.partition("#")[0]).resolve() for link in relative_links(ROOT / "README.md") if link.endswith(".md")
    }
    pages = {page.resolve() for page in (ROOT / "docs").glob("*.md")}
    assert not pages - linked, f"docs pages the README does not link: {sorted(p.name for p in pages - linked)}"
    written = {(ROOT / page).resolve() for page in PAGES_BEING_WRITTEN}
    assert written <= linked, "every page being written must already be linked from the README"


def test_every_relative_link_leads_somewhere():
    assert broken_links(ROOT, PAGES_BEING_WRITTEN) == []


def test_pages_being_written_do_not_exist_yet():
    exist = sorted(page for page in PAGES_BEING_WRITTEN if (ROOT / page).exists())
    assert not exist, f"{exist} exist now: remove them from PAGES_BEING_WRITTEN in tests/test_docs.py"


def test_link_check_finds_broken_files_and_anchors(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "page.md").write_text("# A page\n\n## Two words\n\n[up](../README.md#title)\n")
    (tmp_path / "README.md").write_text(
        "# Title\n\n[ok](docs/page.md#two-words) [gone](docs/gone.md) [bad anchor](docs/page.md#three)\n"
        "![image](docs/missing.png) [web](https://example.com/x.md) `[code](docs/nothing.md)`\n"
        "```\n[fenced](docs/nothing.md)\n```\n[pending](docs/pending.md) `a code span\n[over lines](docs/no.md)`\n"
    )
    assert broken_links(tmp_path, {"docs/pending.md"}) == [
        "README.md: docs/gone.md: no such file",
        "README.md: docs/page.md#three: no heading with that anchor",
        "README.md: docs/missing.png: no such file",
    ]


def test_github_anchor_rules():
    text = "# Forge / reForge\n## `depth` command\n## Tested where\n## Tested where\n```\n# not a heading\n```\n"
    assert anchors(text) == {"forge--reforge", "depth-command", "tested-where", "tested-where-1"}


def test_development_page_shows_the_readme_commands():
    """CI and the developer guide read the commands from the README; the page must not drift from it."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    page = (ROOT / "docs" / "development.md").read_text(encoding="utf-8")
    assert code_block(page, "# Development") == code_block(readme, "\n## Development\n")


def test_licence_is_mit():
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert text.startswith("MIT License\n")
    assert "Copyright (c) 2026 sd-webui-depth2img contributors" in text
    assert 'THE SOFTWARE IS PROVIDED "AS IS"' in text


def test_extension_index_entry_has_what_the_index_requires():
    """The fields and checks of the index's own validator (.github/scripts/validate.py, validate_entry)."""
    entry = json.loads((ROOT / "docs" / "extension-index.json").read_text(encoding="utf-8"))
    for key in ("name", "url", "description", "tags"):
        assert key in entry, f"missing key: {key}"
    assert all(isinstance(entry[key], str) and entry[key].strip() for key in ("name", "url", "description"))
    assert isinstance(entry["tags"], list) and entry["tags"], "tags: a non-empty list"
    assert set(entry["tags"]) <= INDEX_TAGS, f"tags the index does not know: {set(entry['tags']) - INDEX_TAGS}"
    assert "manipulations" in entry["tags"]
    assert re.fullmatch(r"https://github\.com/[^ /]+/sd-webui-depth2img", entry["url"]), entry["url"]
    if "added" in entry:
        datetime.date.fromisoformat(entry["added"])
