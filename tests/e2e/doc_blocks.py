"""The runnable blocks of a markdown document, and the one bash script that runs them in order.

A fenced block whose language is ``sh``, ``bash`` or ``python`` is run. A comment on the line just
before its fence changes that (it does not show when the markdown is rendered):

- ``<!-- doc-test: skip, REASON -->`` the block is not run (say why: it starts the server, needs a
  second machine, is an excerpt…);
- ``<!-- doc-test: errors expected -->`` its curl calls may answer 4xx (it shows a refusal);
  everywhere else a curl answered with an HTTP error fails the document.

Anywhere in a document, ``<!-- doc-test: server NAME=value … -->`` names settings its registry must
start with (the ones the document tells its reader to start the service with).

A ``json``, ``text`` or unnamed block right after a run block (nothing but blank lines between) shows
what that block prints, and what it printed is compared with it (:mod:`tests.e2e.doc_outputs` says
how, placeholders and all); ``<!-- doc-test: output -->`` on the line before such a block makes it the
shown output of the run block above it across prose too, and ``<!-- doc-test: illustration -->`` says
that a block after prose is an illustration (a layout, a shape, a log line), not an output to
compare: every such block says which it is (:func:`unmarked_shown_blocks`).
"""
from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import urlsplit

RUN_LANGUAGES = {"sh", "bash", "python"}
OUTPUT_LANGUAGES = {"json", "text", ""}
OUTPUT_MARKER = "output"
ILLUSTRATION_MARKER = "illustration"
FENCE = re.compile(r"^```(\S*)\s*$")
MARKER = re.compile(r"^<!--\s*doc-test:\s*(.*?)\s*-->$")
SERVER = re.compile(r"<!--\s*doc-test:\s*server\s+(.*?)\s*-->")
DOCS_ADDRESS = "127.0.0.1:8000"
DOCS_GRPC_ADDRESS = "127.0.0.1:8001"  # GRPC_BIND where a document starts the service with it


@dataclass(frozen=True)
class Block:
    """One fenced block: its language, code, the line its fence is on, and how it is run."""

    language: str
    code: str
    line: int
    skip: str | None = None
    errors_expected: bool = False
    shown: str | None = None  # the output the document shows for it, compared with what it prints
    shown_language: str = ""
    shown_line: int | None = None


def blocks(path: Path) -> list[Block]:
    """Every runnable-language block of a markdown file, in order, with its marker's effect."""
    lines = path.read_text(encoding="utf-8").splitlines()
    found = []
    for fence in _fences(lines):
        text = "\n".join(lines[fence.line + 1:fence.end]) + "\n"
        if fence.language in RUN_LANGUAGES:
            found.append(Block(
                language=fence.language, code=text, line=fence.line + 1,
                skip=fence.marker[len("skip"):].lstrip(" ,:") or "no reason given"
                if fence.marker.startswith("skip") else None,
                errors_expected=fence.marker == "errors expected",
            ))
        elif fence.after_run is not None and fence.language in OUTPUT_LANGUAGES and (
                fence.marker == OUTPUT_MARKER or fence.right_after_a_run):
            found[-1] = replace(found[-1], shown=text, shown_language=fence.language, shown_line=fence.line + 1)
    return found


def unmarked_shown_blocks(path: Path) -> list[int]:
    """The lines of ``json``, ``text`` and unnamed blocks that follow prose and say neither
    ``doc-test: output`` nor ``doc-test: illustration``: blocks a reader takes for an output that no
    test compares."""
    return [fence.line + 1 for fence in _fences(path.read_text(encoding="utf-8").splitlines())
            if fence.language in OUTPUT_LANGUAGES and not fence.right_after_a_run
            and fence.marker not in (OUTPUT_MARKER, ILLUSTRATION_MARKER)]


@dataclass(frozen=True)
class _Fence:
    language: str
    line: int  # the opening fence's index
    end: int  # the closing fence's index
    marker: str
    after_run: int | None  # the closing fence's index of a run block just above, if any
    right_after_a_run: bool  # with nothing but blank lines between


def _fences(lines: list[str]) -> list[_Fence]:
    """Every fenced block of a document, in order, with the marker above it."""
    fences, index, after_run = [], 0, None
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if not opening:
            index += 1
            continue
        end = next(i for i in range(index + 1, len(lines)) if lines[i].startswith("```"))
        adjacent = after_run is not None and not any(line.strip() for line in lines[after_run + 1:index])
        fences.append(_Fence(opening.group(1), index, end, _marker(lines, index), after_run, adjacent))
        after_run = end if opening.group(1) in RUN_LANGUAGES else None
        index = end + 1
    return fences


def server_settings(path: Path) -> dict[str, str]:
    """The settings the document's registry starts with, from its ``doc-test: server`` markers."""
    settings = {}
    for match in SERVER.finditer(path.read_text(encoding="utf-8")):
        settings.update(pair.split("=", 1) for pair in match.group(1).split())
    return settings


def _marker(lines: list[str], fence: int) -> str:
    previous = next((lines[i].strip() for i in range(fence - 1, -1, -1) if lines[i].strip()), "")
    match = MARKER.match(previous)
    return match.group(1) if match else ""


def output_file(block: Block) -> str:
    """The name of the file in ``$DOC_OUTPUTS`` that holds what ``block`` printed (one with a shown output)."""
    return f"block-{block.line}.out"


def script(document: Path, base_url: str, python: str, grpc_address: str = DOCS_GRPC_ADDRESS) -> str:
    """A bash script that runs the document's blocks in order against ``base_url`` (in place of
    ``127.0.0.1:8000``, with or without ``http://``; ``grpc_address`` in place of ``127.0.0.1:8001``), stopping at the
    first failure with the block's line; python blocks run with ``python``. What a block with a shown
    output prints goes to its :func:`output_file` in ``$DOC_OUTPUTS`` too."""
    parts = [
        "set -euo pipefail",
        # curl answers 0 for a 4xx; here an HTTP error fails the block, unless it expects errors (or the
        # document's own line says --fail, which curl takes with --fail-with-body only as an error)
        'curl() { if [ "${DOC_ERRORS_EXPECTED:-}" = 1 ] || [[ " $* " == *" --fail "* ]]; then command curl "$@"; '
        'else command curl --fail-with-body "$@"; fi; }',
        "export -f curl",
    ]
    for block in blocks(document):
        if block.skip:
            continue
        code = block.code.replace(DOCS_ADDRESS, urlsplit(base_url).netloc).replace(DOCS_GRPC_ADDRESS, grpc_address)
        where = shlex.quote(f"{document.name}:{block.line}")
        parts.append(f"echo '--- block at' {where} >&2")
        parts.append(f"export DOC_ERRORS_EXPECTED={int(block.errors_expected)}")
        if block.language == "python":
            code = f"{shlex.quote(python)} - <<'DOC_PYTHON_BLOCK'\n{code}DOC_PYTHON_BLOCK\n"
        if block.shown is None:
            parts.append(code)
        else:  # a group, not a subshell: what the block sets stays set for the blocks after it
            captured = f'"$DOC_OUTPUTS"/{output_file(block)}'
            parts.append(f"{{\n{code}}} > {captured}\ncat {captured}")
    return "\n".join(parts) + "\n"
