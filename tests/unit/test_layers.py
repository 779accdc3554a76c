"""The layering of DESIGN.md, held by reading the imports of every module."""
import ast
import subprocess
import sys
from pathlib import Path

import pytest

from config import BASE_DIR

def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _modules(package: str) -> list[Path]:
    return sorted(p.relative_to(BASE_DIR) for p in (BASE_DIR / package).rglob("*.py"))


@pytest.mark.parametrize("path", _modules("registry"), ids=str)
def test_the_domain_does_not_import_the_trainers(path):
    assert not {name for name in _imports(BASE_DIR / path) if name.split(".")[0] == "trainers"}


def _top_level_imports(path: Path) -> set[str]:
    """What a module imports when it is imported (not what its functions import when called)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


# The command line of declared state reads YAML and checks it against its JSON Schema; the rest of the client
# needs neither.
DECLARED_STATE = (Path("client/src/registry_client/declared"), Path("client/src/registry_client/cli.py"))


@pytest.mark.parametrize("path", _modules("client/src/registry_client"), ids=str)
def test_the_client_imports_only_the_standard_library_and_requests(path):
    outside = {name for name in _top_level_imports(BASE_DIR / path) if name not in sys.stdlib_module_names}
    declared = any(path == part or part in path.parents for part in DECLARED_STATE)
    assert outside <= {"__future__", "requests", "urllib3", "registry_client"} | ({"yaml", "jsonschema"} if declared else set())


@pytest.mark.parametrize("path", _modules("bench"), ids=str)
def test_the_benchmarks_never_import_the_tests(path):
    assert not {name for name in _imports(BASE_DIR / path) if name.split(".")[0] == "tests"}


def _positional(function: ast.FunctionDef) -> list[str]:
    return [a.arg for a in function.args.posonlyargs + function.args.args if a.arg not in ("self", "cls")]


@pytest.mark.parametrize("path", _modules("registry"), ids=str)
def test_public_functions_of_the_domain_take_more_than_three_parameters_by_keyword(path):
    tree = ast.parse((BASE_DIR / path).read_text(), filename=str(path))
    crowded = [
        f"{node.name}({', '.join(_positional(node))})"
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef) and not node.name.startswith("_") and len(_positional(node)) > 3
    ]
    assert crowded == []


def _lint_imports(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "from importlinter.cli import lint_imports_command; lint_imports_command()",
                           "--config", "pyproject.toml", "--no-cache"],
                          cwd=root, capture_output=True, text=True, timeout=300, check=False)


def test_the_floors_of_registry_api_and_deploy_hold_as_pyproject_declares_them():
    """import-linter's contracts (pyproject.toml): the house's layers, each package's floors (every module
    placed), no Flask in the domain, no import circle anywhere."""
    linted = _lint_imports(BASE_DIR)

    assert linted.returncode == 0, linted.stdout[-6000:] + linted.stderr[-2000:]
    assert "0 broken" in linted.stdout


def test_the_contracts_fail_on_a_floor_imported_from_below_and_on_a_module_no_floor_names(tmp_path):
    """The same tool on a house built to break them, so that a change in import-linter that stopped
    checking could not pass unseen."""
    house = tmp_path / "house"
    house.mkdir()
    (house / "__init__.py").write_text("")
    (house / "high.py").write_text("")
    (house / "low.py").write_text("import house.high\n")
    (house / "unplaced.py").write_text("")
    (tmp_path / "pyproject.toml").write_text(
        '[tool.importlinter]\nroot_package = "house"\n\n[[tool.importlinter.contracts]]\nname = "floors"\n'
        'type = "layers"\ncontainers = ["house"]\nexhaustive = true\nlayers = ["high", "low"]\n')

    linted = _lint_imports(tmp_path)

    assert linted.returncode == 1
    assert "house.low -> house.high" in linted.stdout and "house.unplaced" in linted.stdout
