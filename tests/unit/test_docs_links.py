"""The README and docs/ link only to files (and headings) that exist in the repository."""
import re
from pathlib import Path

import pytest

from config import BASE_DIR

DOCUMENTS = [BASE_DIR / "README.md", *sorted((BASE_DIR / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)


def relative_links(document: Path) -> list[str]:
    """Targets of the document's Markdown links that point inside the repository (code blocks skipped)."""
    text = FENCE.sub("", document.read_text())
    return [target for target in LINK.findall(text) if not re.match(r"^[a-z][a-z0-9+.-]*:", target)]


def anchors(document: Path) -> set[str]:
    """The anchors GitHub gives the document's headings: lowercased, punctuation dropped, spaces to hyphens."""
    seen: dict[str, int] = {}
    found = set()
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*#*$", FENCE.sub("", document.read_text()), re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        found.add(f"{slug}-{seen[slug]}" if slug in seen else slug)
        seen[slug] = seen.get(slug, 0) + 1
    return found


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: str(path.relative_to(BASE_DIR)))
def test_every_relative_link_resolves_to_a_file_and_heading_of_the_repository(document):
    broken = []
    for target in relative_links(document):
        path, _, anchor = target.partition("#")
        resolved = (document.parent / path).resolve() if path else document
        if not resolved.is_relative_to(BASE_DIR) or not resolved.exists():
            broken.append(target)
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            broken.append(target)
    assert broken == []


def test_the_link_check_sees_links_files_and_headings():
    readme = BASE_DIR / "README.md"
    assert "docs/http-api.md" in relative_links(readme)
    assert "hot-swap-what-callers-can-rely-on" in anchors(readme)
