"""Every Python block of the README and docs/ imports only what a reader following the document has
(issue 47, item 12): the standard library, the service's own requirements (what `make run` installs),
the Python client, or a package an earlier block of the same document installs with pip.

The docs test runs the blocks in the project's test venv, which has the test packages too; a block
importing one of those (tritonclient was one) passed there and failed in the venv `make run` builds.
"""
import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

from tests.e2e.doc_blocks import blocks

BASE_DIR = Path(__file__).resolve().parents[2]
DOCUMENTS = [BASE_DIR / "README.md", *sorted((BASE_DIR / "docs").glob("*.md"))]
PIP_INSTALL = re.compile(r"pip install\b(.*)")
REQUIREMENT = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[([^\]]*)\])?")
CLIENT = re.compile(r"^\S*client(?:\[([^\]]*)\])?$")  # ./client or ./client[batch,dask]
# The project's own modules: a block run from the checkout (or the installed service) imports them.
OWN = {"registry", "api", "trainers", "config", "wsgi", "bench", "deploy", "registry_client"}


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def required(path: Path) -> set[str]:
    """The distributions a requirements file names."""
    names = set()
    for line in path.read_text().splitlines():
        found = REQUIREMENT.match(line.strip())
        if found and not line.strip().startswith(("#", "-")):
            names.add(normalized(found.group(1)))
    return names


def installed_by(code: str) -> set[str]:
    """The distributions a shell block's pip install lines name (quoted, with extras and pins; the
    client's folder with the extras its pyproject.toml declares)."""
    names = set()
    for line in code.splitlines():
        found = PIP_INSTALL.search(line)
        if not found:
            continue
        for word in found.group(1).split():
            word = word.strip("\"'")
            client = CLIENT.match(word)
            if client:
                names |= with_extras("model-registry-client", client.group(1))
            elif not (word.startswith("-") or "/" in word or word == "."):
                name = REQUIREMENT.match(word)
                names |= with_extras(name.group(1), name.group(2)) if name else set()
    return names


def with_extras(name: str, extras: str | None) -> set[str]:
    """``name`` and what its ``extras`` add: the client's own extras from its pyproject.toml, and an
    extra named for a distribution of its own (dask[distributed]) as that distribution."""
    names = {normalized(name)}
    declared = tomllib.loads((BASE_DIR / "client" / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    for extra in filter(None, (extra.strip() for extra in (extras or "").split(","))):
        if normalized(name) != "model-registry-client":
            names.add(normalized(extra))
            continue
        for requirement in declared.get(extra, []):
            found = REQUIREMENT.match(requirement)
            names |= with_extras(found.group(1), found.group(2))
    return names


def imported(code: str) -> set[str]:
    """The top-level modules a Python block imports."""
    modules = set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Import):
            modules |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            modules.add(node.module.split(".")[0])
    return modules


def distributions_of(module: str) -> set[str]:
    return {normalized(name) for name in packages_distributions().get(module, [])}


def what_a_reader_lacks(document: Path) -> list[str]:
    """Modules a Python block of ``document`` imports that the reader's venv would not have."""
    available = required(BASE_DIR / "requirements.txt")
    lacking = []
    for block in blocks(document):
        if block.language in ("sh", "bash"):
            available |= installed_by(block.code)
            continue
        for module in sorted(imported(block.code)):
            if module in sys.stdlib_module_names or module in OWN:
                continue
            if not distributions_of(module) & available:
                lacking.append(f"line {block.line}: {module}")
    return lacking


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: path.name)
def test_every_python_block_imports_only_what_the_reader_has(document):
    assert what_a_reader_lacks(document) == []


def test_a_block_importing_a_test_package_the_document_never_installs_is_found(tmp_path):
    document = tmp_path / "doc.md"
    document.write_text("```python\nimport tritonclient.http as triton\nimport numpy\n```\n")
    assert what_a_reader_lacks(document) == ["line 1: tritonclient"]

    document.write_text('```sh\npip install "tritonclient[http]==2.73.0"\n```\n\n'
                        "```python\nimport tritonclient.http as triton\n```\n")
    assert what_a_reader_lacks(document) == []
