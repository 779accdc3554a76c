"""What an alias answers is written in one module, which asks the policy: held by reading every module of
registry/ and api/, so that a new path that sets an alias's version or a rollout's split elsewhere fails here."""
import ast
from pathlib import Path

import pytest

from config import BASE_DIR

THE_ONE = Path("registry/aliases/answers.py")
# The columns (and relationships) that decide what an alias's callers get: its version, the rollout's arms.
ANSWERING = {"version_id", "canary", "canary_version_id", "canary_percent", "shadow", "shadow_version_id",
             "shadow_percent"}
TABLES = {"Alias", "Rollout"}
GUARD = {"check_move"}  # the policy's check of a change: asked by the one module only


def _modules() -> list[Path]:
    return sorted(p.relative_to(BASE_DIR) for package in ("registry", "api") for p in (BASE_DIR / package).rglob("*.py"))


def bypasses(source: str) -> list[str]:
    """Where ``source`` writes what an alias answers, or asks the policy, by itself."""
    found = []
    for node in ast.walk(ast.parse(source)):
        targets = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
            targets = [node.target]
        for target in targets:
            for leaf in ast.walk(target):
                if isinstance(leaf, ast.Attribute) and leaf.attr in ANSWERING:
                    found.append(f"line {leaf.lineno}: sets .{leaf.attr}")
        if isinstance(node, ast.Call):
            name = _called(node.func)
            if name == "Alias" or (name == "Rollout" and any(k.arg in ANSWERING | {None} for k in node.keywords)):
                found.append(f"line {node.lineno}: makes a {name} row that answers")
            if name in GUARD:
                found.append(f"line {node.lineno}: asks the policy ({name})")
            if name in ("update", "insert") and node.args and _called(node.args[0]) in TABLES:
                found.append(f"line {node.lineno}: {name}({_called(node.args[0])}) in SQL")
            if name == "setattr" and len(node.args) > 1 and isinstance(node.args[1], ast.Constant) \
                    and node.args[1].value in ANSWERING:
                found.append(f"line {node.lineno}: setattr {node.args[1].value!r}")
    return found


def _called(func: ast.expr) -> str | None:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return None


@pytest.mark.parametrize("path", [p for p in _modules() if p != THE_ONE], ids=str)
def test_only_the_one_module_sets_an_alias_version_or_a_rollout_split_or_asks_the_policy(path):
    assert bypasses((BASE_DIR / path).read_text()) == []


def test_the_one_module_asks_the_policy_before_it_writes():
    source = (BASE_DIR / THE_ONE).read_text()
    decide = next(node for node in ast.parse(source).body if isinstance(node, ast.FunctionDef) and node.name == "decide")
    calls = [_called(node.func) for node in ast.walk(decide) if isinstance(node, ast.Call)]
    assert calls.index("_allowed") < calls.index("_split") and calls.index("_allowed") < calls.index("_serve")


@pytest.mark.parametrize("source", [
    "current.version_id = version.id",
    "rollout.canary_percent, rollout.changed_at = 99.99, now",
    "db.session.add(Alias(model_id=1, name='production', version_id=2))",
    "db.session.execute(update(Rollout).values(canary_percent=100))",
    "setattr(rollout, 'shadow_percent', 5)",
    "db.session.add(Rollout(model_id=1, alias='production', canary=v2, canary_percent=100))",
    "db.session.add(Rollout(**settings))",
    "check_move(model, alias, candidate=None, current=None, actor='x', role=None, action='promote')",
])
def test_the_reader_finds_each_way_round(source):
    assert bypasses(source)


def test_the_reader_lets_other_tables_be(source="run = BatchRun(version_id=3)\nRollout(model_id=1, alias='a')"):
    assert bypasses(source) == []
