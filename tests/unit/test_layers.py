"""The layering of DESIGN.md, held by reading the imports of every module."""
import ast
from pathlib import Path

import pytest

from config import BASE_DIR

# The one module of the domain allowed to touch Flask-SQLAlchemy (never Flask itself).
DATABASE_MODULE = Path("registry/db.py")


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


@pytest.mark.parametrize("path", _modules("registry") + _modules("trainers"), ids=str)
def test_the_domain_and_the_trainers_never_import_flask_or_the_api(path):
    allowed = {"flask_sqlalchemy"} if path == DATABASE_MODULE else set()
    forbidden = {
        name for name in _imports(BASE_DIR / path)
        if name.split(".")[0] in {"flask", "flask_sqlalchemy", "flask_smorest", "flask_migrate", "werkzeug", "api"}
    }
    assert forbidden <= allowed


@pytest.mark.parametrize("path", _modules("registry"), ids=str)
def test_the_domain_does_not_import_the_trainers(path):
    assert not {name for name in _imports(BASE_DIR / path) if name.split(".")[0] == "trainers"}


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
