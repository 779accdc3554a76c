"""docs/configuration.md's table names every environment variable the settings' groups read (issue 68), and the
groups read every variable the table names (issue 69): neither may fall behind the other; config.py is the one
module that reads the settings, gunicorn's own among them."""
import ast
import re

from config import BASE_DIR, RETIRED, load

TABLE = BASE_DIR / "docs" / "configuration.md"
VARIABLE = re.compile(r"[A-Z][A-Z0-9_]+")


class Recording(dict):
    """An empty environment that notes every variable asked of it."""

    def __init__(self):
        super().__init__()
        self.asked: set[str] = set()

    def get(self, name, default=None):
        self.asked.add(name)
        return super().get(name, default)


def read_by_config() -> set[str]:
    """The variables ``config.load`` reads to build the settings' groups (a secret's ``X_FILE`` with its ``X``), the
    retired ones aside (read only to say they are ignored; the page names them below the table)."""
    environ = Recording()
    load(environ)
    return environ.asked - set(RETIRED)


def in_the_table(first_cell: bool = False) -> set[str]:
    """The names in backticks on the rows of the configuration table, or in their first cells alone (the names
    a row is about; ``OTEL_*`` stands for every ``OTEL_`` one)."""
    table = TABLE.read_text().partition("## Environment variables")[2]  # not the groups' table above it
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    cells = [row.split("|")[1] if first_cell else row for row in rows]
    return {name for cell in cells for name in re.findall(r"`([A-Z][A-Z0-9_]*\*?)`", cell)}


def test_every_variable_config_reads_is_in_the_configuration_table():
    table = in_the_table()
    missing = {name for name in read_by_config() - table if not (name.startswith("OTEL_") and "OTEL_*" in table)}
    assert missing == set()


def test_the_check_sees_what_config_reads():
    assert {"DATABASE_URL", "DATABASE_URL_FILE", "ARTIFACT_ROOT", "MAX_UPLOAD_MB", "OIDC_ISSUER", "ADMISSION_WAIT_MS",
            "WEBHOOK_DEADLINE_SECONDS", "OTEL_TRACES_SAMPLER"} <= read_by_config()


def test_every_variable_the_table_names_is_read_by_config():
    read = read_by_config()
    named = in_the_table(first_cell=True)
    patterns = {name for name in named if name.endswith("*")}  # OTEL_*: the SDK reads the others itself
    assert patterns <= {"OTEL_*"}
    assert named - patterns - read == set()


def test_gunicorn_s_settings_are_read_by_config_alone():
    source = (BASE_DIR / "deploy" / "gunicorn_conf.py").read_text()
    assert {"BIND", "DRAIN_SECONDS", "LINGER_SECONDS", "ACCESS_LOG"} <= read_by_config()
    assert not re.search(r"environ(\.get)?[\[(]\"(BIND|DRAIN_SECONDS|LINGER_SECONDS|ACCESS_LOG|WEB_CONCURRENCY)\"", source)


def _environment_reads(path) -> set[str]:
    """The variables a module reads from the environment by name (``environ.get("X")``, ``environ["X"]``,
    ``getenv("X")``), setting one aside."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in ("get", "getenv"):
            owner = node.func.value
            named = owner.attr if isinstance(owner, ast.Attribute) else getattr(owner, "id", "")
            if (named == "environ" or node.func.attr == "getenv") and node.args and isinstance(node.args[0], ast.Constant):
                names.add(node.args[0].value)
        elif (isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load) and isinstance(node.slice, ast.Constant)
              and getattr(node.value, "attr", getattr(node.value, "id", "")) == "environ"):
            names.add(node.slice.value)
    return names


def test_no_module_but_config_reads_the_settings_from_the_environment():
    table = in_the_table(first_cell=True)
    read = {str(path.relative_to(BASE_DIR)): {name for name in _environment_reads(path)
                                              if name in table or name.startswith("OTEL_")}
            for folder in ("api", "registry", "deploy") for path in (BASE_DIR / folder).rglob("*.py")}
    # prometheus_client reads its own variable at import; the directory must exist before any metric is defined.
    assert {path: names for path, names in read.items() if names} == {"registry/telemetry.py": {"PROMETHEUS_MULTIPROC_DIR"}}
