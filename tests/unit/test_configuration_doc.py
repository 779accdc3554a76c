"""docs/configuration.md's table names every environment variable config.py reads (issue 68), and config.py
reads every variable the table names (issue 69): the table moved out of the README, and neither may fall behind
the other; config.py is the one module that reads the settings, gunicorn's own among them."""
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


def in_the_table(first_cell: bool = False) -> set[str]:
    """The names in backticks on the rows of the configuration table, or in their first cells alone (the names
    a row is about; ``OTEL_*`` stands for every ``OTEL_`` one)."""
    rows = [line for line in TABLE.read_text().splitlines() if line.startswith("| `")]
    cells = [row.split("|")[1] if first_cell else row for row in rows]
    return {name for cell in cells for name in re.findall(r"`([A-Z][A-Z0-9_]*\*?)`", cell)}


def read_as_secrets() -> set[str]:
    """The variables config.py reads through ``secret("X")``: each may also be given as the file ``X_FILE`` names."""
    tree = ast.parse((BASE_DIR / "config.py").read_text())
    return {node.args[0].value for node in ast.walk(tree)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "secret"}


def test_every_variable_config_reads_is_in_the_configuration_table():
    table = in_the_table()
    missing = {name for name in read_by_config() - table if not (name.startswith("OTEL_") and "OTEL_*" in table)}
    assert missing == set()


def test_the_check_sees_what_config_reads():
    assert {"DATABASE_URL", "ARTIFACT_ROOT", "MAX_UPLOAD_MB", "OIDC_ISSUER"} <= read_by_config()


def test_every_variable_the_table_names_is_read_by_config():
    read = read_by_config() | {f"{name}_FILE" for name in read_as_secrets()}
    named = in_the_table(first_cell=True)
    patterns = {name for name in named if name.endswith("*")}  # OTEL_*: the SDK reads the others itself
    assert patterns <= {"OTEL_*"}
    assert named - patterns - read == set()


def test_gunicorn_s_settings_are_read_by_config_alone():
    source = (BASE_DIR / "deploy" / "gunicorn_conf.py").read_text()
    assert {"BIND", "DRAIN_SECONDS", "LINGER_SECONDS", "ACCESS_LOG"} <= read_by_config()
    assert not re.search(r"environ(\.get)?[\[(]\"(BIND|DRAIN_SECONDS|LINGER_SECONDS|ACCESS_LOG|WEB_CONCURRENCY)\"", source)
