"""Shared fixtures: an app on a migrated database of the backend under test, clients, tokens.

Every test gets a fresh app (so a fresh ModelServer: empty cache, no alias snapshot) on a clean
database and a clean artifact root. The database is migrated once per session; each test then
gets the migrated SQLite file copied back in place, or the PostgreSQL database emptied by DELETEs
(much cheaper than TRUNCATE, which rewrites every table's files). Its URL stays the same all run,
so the apps share one engine and the SQL it compiled (tests/engines.py).
"""
import os

# Before anything imports grpc: its fork support (on by default) restarts its poller threads in a forked
# child, and a server the harness starts with Popen's preexec_fn (die_with_parent) after a test made gRPC
# calls lost that poller's epoll descriptor to close_fds and died of SIGABRT before its exec (about one
# start in a hundred: "epoll_wait error: Bad file descriptor" as the whole log). The servers themselves
# fork before they start gRPC, and take this off with the test run's environment.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "0")

import shutil  # noqa: E402
from pathlib import Path  # noqa: E402

import psycopg  # noqa: E402
import pytest  # noqa: E402
from flask_migrate import upgrade  # noqa: E402

from bench.harness import s3_server as seaweedfs  # noqa: E402
from bench.harness.databases import POSTGRES_URL, libpq_conninfo  # noqa: E402
from registry.db import db  # noqa: E402
from tests.databases import BACKEND, fresh_database, use_postgres_server  # noqa: E402
from tests.engines import shared_engines  # noqa: E402
from tests.helpers import ADMIN_TOKEN, MIGRATIONS, close_app, make_app  # noqa: E402
from tests.postgres_server import find_pg_ctl, missing_server_message  # noqa: E402
from tests.postgres_server import postgres_server as serving_postgres  # noqa: E402
from tests.url_builders import compiled_once  # noqa: E402


# The fixtures through which a test reaches the database of the pass (every app, client and token
# fixture stands on them).
DATABASE_FIXTURES = frozenset({"test_database", "migrated_database"})
# What a test module imports when it chooses or starts a database itself.
DATABASE_CHOOSERS = ("BACKEND", "fresh_database", "postgres_database", "POSTGRES_URL")


def pytest_configure(config):
    """Fail the PostgreSQL pass at once, in one line, when there is no server and nothing to start one with."""
    if BACKEND == "postgresql":
        problem = missing_server_message(POSTGRES_URL, find_pg_ctl())
        if problem:
            raise pytest.UsageError(problem)


def pytest_collection_modifyitems(config, items):
    """The PostgreSQL pass runs what reaches a database: a test outside tests/e2e that reaches none
    (no app, client or database fixture, no database of its own) would only repeat, on the same code,
    what the SQLite pass ran, so it is deselected here. End-to-end tests say which pass runs them."""
    if BACKEND != "postgresql":
        return
    kept = [item for item in items if _reaches_a_database(item)]
    if len(kept) < len(items):
        kept_ids = {id(item) for item in kept}
        config.hook.pytest_deselected(items=[item for item in items if id(item) not in kept_ids])
        items[:] = kept


def _reaches_a_database(item) -> bool:
    if "e2e" in item.path.parts or DATABASE_FIXTURES & set(getattr(item, "fixturenames", ())):
        return True
    module = getattr(item, "module", None)
    return any(hasattr(module, name) for name in DATABASE_CHOOSERS)


@pytest.fixture(scope="session", autouse=True)
def url_builders_compiled_once():
    """Every app of the run shares each route's compiled URL builder (tests/url_builders.py)."""
    with compiled_once():
        yield


@pytest.fixture(scope="session", autouse=True)
def postgres_server():
    """The URL of the PostgreSQL server this run creates its databases on (None on SQLite)."""
    if BACKEND != "postgresql":
        yield None
        return
    with serving_postgres(POSTGRES_URL) as url:
        use_postgres_server(url)
        yield url


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """A real S3 server (SeaweedFS), started once per run by the first test that needs one."""
    with seaweedfs.running(tmp_path_factory.mktemp("s3")) as server:
        yield server


@pytest.fixture
def s3_prefix(s3_server, request):
    """``(bucket, prefix)``: a place of its own for one test in the run's one bucket (SeaweedFS gives
    each bucket volumes of its own, so a bucket per test would soon run out of them)."""
    s3_server.create_bucket("tests")
    return "tests", f"t{abs(hash(request.node.nodeid)) % 10**12}"


@pytest.fixture(scope="session")
def migrated_database(tmp_path_factory):
    """A database upgraded to head once per session (a template file on SQLite)."""
    with fresh_database(tmp_path_factory.mktemp("template")) as url:
        app = make_app(url, tmp_path_factory.mktemp("unused-artifacts"))
        with app.app_context():
            upgrade(directory=MIGRATIONS)
            db.engine.dispose()
        yield url


@pytest.fixture(scope="session")
def test_database(migrated_database, tmp_path_factory):
    """The URL every test's clean database has, and ``reset()``, which makes it clean."""
    if BACKEND == "postgresql":
        with psycopg.connect(libpq_conninfo(migrated_database), autocommit=True) as conn:
            script = _emptying_script(conn)
            with shared_engines(migrated_database):
                yield migrated_database, lambda: conn.execute(script)
        return
    template = Path(migrated_database.removeprefix("sqlite:///"))
    path = tmp_path_factory.mktemp("database") / "registry.db"
    url = f"sqlite:///{path}"
    with shared_engines(url) as engines:

        def reset():
            engines.disconnect()
            for leftover in path.parent.glob("registry.db-*"):  # the last test's journal, WAL and shared memory
                leftover.unlink()
            # Put in place whole, never unlinked first: a connection opened meanwhile (a thread of an app that
            # outlived its test) would make an empty database there, which then lacked every table.
            fresh = path.with_name("registry.db.fresh")
            shutil.copyfile(template, fresh)
            os.replace(fresh, path)

        yield url, reset


def _emptying_script(conn) -> str:
    """One transaction that deletes every row and sets every sequence back to 1.

    ``setval`` rather than ``ALTER SEQUENCE … RESTART``, which gives each sequence a new file.
    """
    sequences = [name for (name,) in conn.execute(
        "SELECT quote_literal(quote_ident(sequence_name)) FROM information_schema.sequences"
        " WHERE sequence_schema = 'public'"
    )]
    deletes = [f"DELETE FROM {table.name}" for table in reversed(db.metadata.sorted_tables)]
    restarts = ", ".join(f"setval({name}, 1, false)" for name in sequences)
    return "BEGIN; " + "; ".join(deletes) + f"; SELECT {restarts}; COMMIT"


@pytest.fixture
def database_url(test_database):
    """A clean, migrated database for one test."""
    url, reset = test_database
    reset()
    return url


@pytest.fixture
def app(database_url, tmp_path):
    """The application on a fresh database and artifact root."""
    app = make_app(database_url, tmp_path / "artifacts")
    yield app
    close_app(app)


@pytest.fixture
def build_app(database_url, tmp_path):
    """``build_app(url=None, artifact_root=None, **overrides)``: another app, torn down afterwards."""
    apps = []

    def build(url=None, artifact_root=None, **overrides):
        app = make_app(url or database_url, artifact_root or tmp_path / f"artifacts-{len(apps)}", **overrides)
        apps.append(app)
        return app

    yield build
    for app in apps:
        close_app(app)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def admin():
    """Headers of the bootstrap admin token."""
    return {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture
def analyst(client, admin):
    """Headers of a fresh ``analyst`` token: a reader with the right to read logged inputs."""
    response = client.post("/tokens", json={"name": "analyst-test", "role": "analyst"}, headers=admin)
    assert response.status_code == 201, response.get_json()
    return {"Authorization": f"Bearer {response.get_json()['token']}"}


@pytest.fixture
def tokens(client, admin):
    """``tokens(name, role, scopes=None)``: the headers of a fresh token of ``role``, scoped where ``scopes`` says."""
    def made(name, role, scopes=None):
        body = {"name": name, "role": role} | ({"scopes": scopes} if scopes is not None else {})
        created = client.post("/tokens", json=body, headers=admin)
        assert created.status_code == 201, created.get_json()
        return {"Authorization": f"Bearer {created.get_json()['token']}"}

    return made


@pytest.fixture
def ci(client, admin):
    """Headers of a fresh ``ci`` token."""
    response = client.post("/tokens", json={"name": "ci-test", "role": "ci"}, headers=admin)
    assert response.status_code == 201, response.get_json()
    return {"Authorization": f"Bearer {response.get_json()['token']}"}

