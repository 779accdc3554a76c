"""The layering of DESIGN.md, held by reading the imports of every module."""
import ast
import sys
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
    # The database module holds the Flask-SQLAlchemy handle and Flask-Migrate's one setup of it.
    allowed = {"flask_sqlalchemy", "flask_migrate"} if path == DATABASE_MODULE else set()
    forbidden = {
        name for name in _imports(BASE_DIR / path)
        if name.split(".")[0] in {"flask", "flask_sqlalchemy", "flask_smorest", "flask_migrate", "werkzeug", "api"}
    }
    assert forbidden <= allowed


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


@pytest.mark.parametrize("path", _modules("client/src/registry_client"), ids=str)
def test_the_client_imports_only_the_standard_library_and_requests(path):
    outside = {name for name in _top_level_imports(BASE_DIR / path) if name not in sys.stdlib_module_names}
    assert outside <= {"__future__", "requests", "urllib3", "registry_client"}


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


# The floors of registry/, bottom up: a package may import its own floor or one below, never one above.
# Modules directly in registry/ are the ground floor (tables, db, names, errors, lookups, paging …).
FLOORS = {
    "": 0, "process": 0,
    "artifacts": 1, "inference": 1,
    "serving": 2,
    "catalog": 3, "aliases": 3, "evaluations": 3, "access": 3, "events": 3, "monitoring": 3, "autopilot": 3,
    "integrity": 3, "governance": 3, "batch": 3,
    "approvals": 4,
}


def _registry_module(path: Path) -> str:
    parts = list(path.with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _registry_imports(path: Path) -> set[str]:
    """The registry modules ``path`` imports, ``from registry import lookups`` read as ``registry.lookups``;
    imports under ``if TYPE_CHECKING:`` count too."""
    tree = ast.parse((BASE_DIR / path).read_text(), filename=str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("registry.")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and node.module.split(".")[0] == "registry":
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                found.add(submodule if _is_module(submodule) else node.module)
    return found - {"registry"}


def _is_module(name: str) -> bool:
    path = BASE_DIR / Path(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _floor_package(module: str) -> str:
    """The package of registry/ that ``module`` belongs to; "" for the modules directly in registry/."""
    parts = module.split(".")
    if len(parts) > 1 and (BASE_DIR / "registry" / parts[1]).is_dir():
        return parts[1]
    return ""


REGISTRY_MODULES = {_registry_module(path): path for path in _modules("registry")}


def test_every_package_of_the_domain_stands_on_a_floor():
    packages = {_floor_package(module) for module in REGISTRY_MODULES}
    assert packages == set(FLOORS)


@pytest.mark.parametrize("module", sorted(REGISTRY_MODULES), ids=str)
def test_no_module_of_the_domain_imports_a_floor_above_its_own(module):
    floor = FLOORS[_floor_package(module)]
    above = sorted(
        imported for imported in _registry_imports(REGISTRY_MODULES[module])
        if FLOORS[_floor_package(imported)] > floor
    )
    assert above == []


def _cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import circle of ``graph`` (a list of nodes, the first repeated at the end), or []."""
    state: dict[str, str] = {}
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = "open"
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        state[node] = "done"
        path.pop()
        return []

    for start in sorted(graph):
        if start not in state:
            found = visit(start)
            if found:
                return found
    return []


def test_no_module_of_the_domain_is_part_of_an_import_circle():
    graph = {module: _registry_imports(path) & set(REGISTRY_MODULES) for module, path in REGISTRY_MODULES.items()}
    assert _cycle(graph) == []


def test_no_two_packages_of_the_domain_import_each_other_even_through_others():
    graph: dict[str, set[str]] = {}
    for module, path in REGISTRY_MODULES.items():
        package = _floor_package(module)
        targets = {_floor_package(imported) for imported in _registry_imports(path)} - {package}
        graph.setdefault(package, set()).update(targets)
    assert _cycle(graph) == []


def test_the_circle_finder_finds_a_circle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": set()}) == []
