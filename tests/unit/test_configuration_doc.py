"""docs/configuration.md's table names every environment variable config.py reads (issue 68): the table
moved out of the README, and must not fall behind the one module that reads the environment."""
import ast
import re

from config import BASE_DIR

TABLE = BASE_DIR / "docs" / "configuration.md"
VARIABLE = re.compile(r"[A-Z][A-Z0-9_]+")


def read_by_config() -> set[str]:
    """The variables config.py reads: the first argument of each of its calls that is a variable's name
    (``os.environ.get("X")``, ``_int("X", …)``, ``_secret("X")`` …), ``os.sysconf``'s names aside."""
    names = set()
    for node in ast.walk(ast.parse((BASE_DIR / "config.py").read_text())):
        if (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str) and VARIABLE.fullmatch(node.args[0].value)
                and not (isinstance(node.func, ast.Attribute) and node.func.attr == "sysconf")):
            names.add(node.args[0].value)
    return names


def in_the_table() -> set[str]:
    """The names in backticks on the rows of the configuration table (``OTEL_*`` stands for every ``OTEL_`` one)."""
    rows = [line for line in TABLE.read_text().splitlines() if line.startswith("| `")]
    return {name for row in rows for name in re.findall(r"`([A-Z][A-Z0-9_]*\*?)`", row)}


def test_every_variable_config_reads_is_in_the_configuration_table():
    table = in_the_table()
    missing = {name for name in read_by_config() - table if not (name.startswith("OTEL_") and "OTEL_*" in table)}
    assert missing == set()


def test_the_check_sees_what_config_reads():
    assert {"DATABASE_URL", "ARTIFACT_ROOT", "MAX_UPLOAD_MB", "OIDC_ISSUER"} <= read_by_config()
