"""The README and docs/*.md: every relative link resolves, the README stays short, and
docs/api.md's module table names exactly the modules fr_utils has.

A link to a local file must name a file or folder that exists (relative to the
page that links it); a link with a ``#fragment`` to a Markdown page must name a
heading of that page, spelt as GitHub spells heading anchors.  Links inside
code (fenced blocks, inline spans) and HTML comments are not links.  External
links (``https:``, ``mailto:``...) are not checked: the tests run offline.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README_MAX_LINES = 160

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_INLINE_CODE = re.compile(r"(`+)(?:(?!\1).)+?\1")
_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
# [text](target) and ![alt](target); the target may be <wrapped> and followed by a "title".
_INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*(<[^>]*>|[^\s)]+)(?:\s+\"[^\"]*\")?\s*\)")
# [label]: target  (reference definitions)
_REF_DEF = re.compile(r"^ {0,3}\[[^\]]+\]:\s*(<[^>]*>|\S+)", re.MULTILINE)
_HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
_HTML_ANCHOR = re.compile(r"<a\s+[^>]*(?:name|id)=\"([^\"]+)\"", re.IGNORECASE)
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def _prose_lines(text: str) -> list[str]:
    """The lines of a Markdown text with fenced code blocks blanked (line numbers kept)."""
    lines, fence = [], None
    for line in text.splitlines():
        match = _FENCE.match(line)
        if fence is None and match:
            fence = match.group(1)[0] * len(match.group(1))
            lines.append("")
        elif fence is not None:
            if line.strip().startswith(fence) and set(line.strip()) <= {fence[0]}:
                fence = None
            lines.append("")
        else:
            lines.append(line)
    return lines


def _without_comments(text: str) -> str:
    """HTML comments blanked, newlines kept so line numbers stay right."""
    return _COMMENT.sub(lambda m: "\n" * m.group(0).count("\n"), text)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: its text, lower case, punctuation dropped, spaces to '-'."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # links -> their text
    text = re.sub(r"<[^>]+>", "", text)  # inline HTML tags
    text = text.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every anchor a Markdown page offers: its headings' slugs (duplicates numbered) and <a name/id>."""
    text = _without_comments(path.read_text(encoding="utf-8"))
    seen: dict[str, int] = {}
    found = set(_HTML_ANCHOR.findall(text))
    for line in _prose_lines(text):
        match = _HEADING.match(line)
        if not match:
            continue
        base = slug(match.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def links(path: Path) -> list[tuple[int, str]]:
    """(line number, target) of every link on a Markdown page, code and comments excluded."""
    text = _without_comments(path.read_text(encoding="utf-8"))
    found = []
    for number, line in enumerate(_prose_lines(text), start=1):
        line = _INLINE_CODE.sub(lambda m: " " * len(m.group(0)), line)
        for pattern in (_INLINE_LINK, _REF_DEF):
            for match in pattern.finditer(line):
                found.append((number, match.group(1).strip("<>")))
    return found


def broken_links(path: Path, root: Path) -> list[str]:
    """Problems with the local links of one page, each naming the page, line and target."""
    problems = []
    for number, target in links(path):
        if _SCHEME.match(target) or target.startswith("//"):
            continue  # external: not checked offline
        where = f"{path.relative_to(root)}:{number}: link {target!r}"
        file_part, _, fragment = target.partition("#")
        file_part = file_part.split("?", 1)[0]
        destination = (path.parent / file_part).resolve() if file_part else path
        if not destination.exists():
            problems.append(f"{where}: {destination} does not exist")
            continue
        try:
            destination.relative_to(root)
        except ValueError:
            problems.append(f"{where}: {destination} is outside the repository")
            continue
        if fragment and destination.suffix.lower() == ".md":
            if fragment not in anchors(destination):
                problems.append(
                    f"{where}: no heading with anchor #{fragment} in "
                    f"{destination.relative_to(root)}"
                )
    return problems


def pages(root: Path) -> list[Path]:
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


# ---- the repository's pages ------------------------------------------------------------


def test_the_docs_pages_exist():
    names = {p.name for p in (ROOT / "docs").glob("*.md")}
    expected = {"README.md", "api.md", "weights.md", "grading.md", "classroom.md",
                "door.md", "training.md", "lfw.md", "measured.md"}
    assert expected <= names, f"missing in docs/: {sorted(expected - names)}"


@pytest.mark.parametrize("page", pages(ROOT), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(page):
    assert page.exists(), f"{page} does not exist"
    problems = broken_links(page, ROOT)
    assert not problems, "broken links:\n" + "\n".join(problems)


def test_readme_is_short():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, (
        f"README.md has {len(lines)} lines, at most {README_MAX_LINES}: move the depth to docs/"
    )


def test_the_index_links_every_docs_page():
    index = ROOT / "docs" / "README.md"
    linked = {(index.parent / t.partition("#")[0]).resolve() for _, t in links(index)}
    unlisted = [p.name for p in (ROOT / "docs").glob("*.md")
                if p.name != "README.md" and p.resolve() not in linked]
    assert not unlisted, f"docs/README.md does not link {unlisted}"


def test_the_readme_links_the_docs_index():
    targets = {(ROOT / t.partition("#")[0]).resolve() for _, t in links(ROOT / "README.md")}
    assert (ROOT / "docs" / "README.md").resolve() in targets


def documented_modules(api_page: Path) -> set[str]:
    """The ``fr_utils.<name>`` modules in the first column of docs/api.md's "Modules" table."""
    lines = _prose_lines(api_page.read_text(encoding="utf-8"))
    start = next(i for i, line in enumerate(lines) if _HEADING.match(line) and slug(_HEADING.match(line).group(2)) == "modules")
    names = set()
    for line in lines[start + 1:]:
        if _HEADING.match(line):
            break
        match = re.match(r"^\|\s*`fr_utils\.([\w.]+)`\s*\|", line)
        if match:
            names.add(match.group(1))
    return names


def package_modules(package: Path) -> set[str]:
    """The public modules and subpackages of fr_utils (private ``_*`` ones and data folders left out)."""
    names = {p.stem for p in package.glob("*.py") if not p.stem.startswith("_")}
    names |= {p.name for p in package.iterdir() if (p / "__init__.py").is_file() and not p.name.startswith("_")}
    return names


def test_the_module_table_matches_the_package():
    documented = documented_modules(ROOT / "docs" / "api.md")
    actual = package_modules(ROOT / "fr_utils")
    assert documented, "docs/api.md has no 'Modules' table of `fr_utils.<module>` rows"
    assert not documented - actual, f"docs/api.md lists modules that fr_utils lacks: {sorted(documented - actual)}"
    assert not actual - documented, f"fr_utils modules missing from docs/api.md's table: {sorted(actual - documented)}"


# ---- the checker itself, on pages made to fail --------------------------------------------


def _write(root: Path, name: str, text: str) -> Path:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_checker_finds_a_missing_file_and_a_missing_heading(tmp_path):
    _write(tmp_path, "docs/a.md", "# Page A\n\n## The `fr_utils.train` options (1:K)\n")
    page = _write(tmp_path, "README.md", (
        "See [a](docs/a.md), [options](docs/a.md#the-fr_utilstrain-options-1k),\n"
        "[top](#title) and ![img](docs/a.md).\n"
        "# Title\n"
        "Broken: [gone](docs/gone.md) and [bad anchor](docs/a.md#no-such-heading)\n"
        "[ref]: docs/also-gone.md\n"
    ))
    problems = broken_links(page, tmp_path)
    assert len(problems) == 3, problems
    assert "README.md:4: link 'docs/gone.md'" in problems[0] and "does not exist" in problems[0]
    assert "#no-such-heading" in problems[1] and "docs/a.md" in problems[1]
    assert "README.md:5: link 'docs/also-gone.md'" in problems[2]


def test_checker_ignores_code_comments_and_external_links(tmp_path):
    page = _write(tmp_path, "README.md", (
        "```markdown\n[in a fence](missing1.md)\n```\n"
        "Inline `[code](missing2.md)` is not a link.\n"
        "<!-- [commented](missing3.md) -->\n"
        "[web](https://example.org/x.md) [mail](mailto:a@b.c)\n"
    ))
    assert broken_links(page, tmp_path) == []


def test_checker_refuses_links_leaving_the_repository(tmp_path):
    repo = tmp_path / "repo"
    _write(tmp_path, "outside.md", "# Out\n")
    page = _write(repo, "README.md", "[out](../outside.md)\n")
    problems = broken_links(page, repo)
    assert len(problems) == 1 and "outside the repository" in problems[0]


def test_slugs_follow_github():
    assert slug("`door/`: the face-recognition door (13 points)") == "door-the-face-recognition-door-13-points"
    assert slug("Why the default pipeline scores 0.9825") == "why-the-default-pipeline-scores-09825"
    assert slug("The door notebook's thresholds") == "the-door-notebooks-thresholds"
    assert slug("Credits and [licences](x.md)") == "credits-and-licences"


def test_module_table_check_sees_a_missing_and_an_extra_module(tmp_path):
    _write(tmp_path, "pkg/__init__.py", "")
    _write(tmp_path, "pkg/kept.py", "")
    _write(tmp_path, "pkg/new.py", "")
    _write(tmp_path, "pkg/_private.py", "")
    _write(tmp_path, "pkg/sub/__init__.py", "")
    page = _write(tmp_path, "api.md", (
        "# API\n## Modules\n| module | holds |\n|---|---|\n"
        "| `fr_utils.kept` | x |\n| `fr_utils.sub` | y |\n| `fr_utils.gone` | z |\n"
        "## Next\n| `fr_utils.elsewhere` | not in the table |\n"
    ))
    assert documented_modules(page) == {"kept", "sub", "gone"}
    assert package_modules(tmp_path / "pkg") == {"kept", "new", "sub"}


def test_duplicate_headings_are_numbered(tmp_path):
    page = _write(tmp_path, "a.md", "# Notes\n## Notes\n## Notes\n")
    assert anchors(page) == {"notes", "notes-1", "notes-2"}
