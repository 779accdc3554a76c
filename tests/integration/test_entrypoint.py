"""The container's entrypoint (deploy/entrypoint.py) before gunicorn: secrets from files, the admin token
kept on the volume, and migrations that replicas starting at once apply one at a time, on the backend
under test. tests/e2e/test_container_image.py runs it in the image."""
import json
import os
import socket
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from bench.harness.tcp_proxy import CuttableProxy
from config import BASE_DIR
from deploy.entrypoint import CannotStart, check_secret_files, kept_admin_token, migrate
from tests.databases import BACKEND, fresh_database
from tests.helpers import MIGRATIONS

REPLICAS = 3


# What the command after the entrypoint sees: the secrets in its environment, and config.py's values.
SHOW = ("import json, os; from config import settings; s = settings(); "
        "print(json.dumps({'environ': sorted(k for k in os.environ if k in ('ADMIN_TOKEN', 'SECRET_KEY', "
        "'AWS_SECRET_ACCESS_KEY', 'ADMIN_TOKEN_FILE')), 'admin': s.access.admin_token, 'key': s.access.secret_key, "
        "'s3': s.storage.s3_secret_access_key, 'database': s.storage.database_url}))")


def _started(tmp_path, **environ) -> dict:
    """What ``python -m deploy.entrypoint python -c SHOW`` printed last, started with ``environ`` only."""
    base = {"PATH": os.environ["PATH"], "INSTANCE_DIR": str(tmp_path / "data"), "ARTIFACT_ROOT": str(tmp_path / "artifacts")}
    done = subprocess.run([sys.executable, "-m", "deploy.entrypoint", sys.executable, "-c", SHOW], cwd=BASE_DIR,
                          env={**base, **environ}, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_secrets_from_files_reach_the_server_without_being_put_in_its_environment(tmp_path):
    for name, value in (("admin", "mr_from-a-file"), ("key", "a key with a trailing space "), ("s3", "s3-secret"),
                        ("url", f"sqlite:///{tmp_path}/registry.db")):
        (tmp_path / name).write_text(value + "\n")

    seen = _started(tmp_path, ADMIN_TOKEN_FILE=str(tmp_path / "admin"), SECRET_KEY_FILE=str(tmp_path / "key"),
                    AWS_SECRET_ACCESS_KEY_FILE=str(tmp_path / "s3"), DATABASE_URL_FILE=str(tmp_path / "url"))

    assert seen == {"environ": ["ADMIN_TOKEN_FILE"], "admin": "mr_from-a-file", "key": "a key with a trailing space ",
                    "s3": "s3-secret", "database": f"sqlite:///{tmp_path}/registry.db"}


def test_the_kept_admin_token_is_named_by_its_file_not_put_in_the_environment(tmp_path):
    seen = _started(tmp_path, DATABASE_URL=f"sqlite:///{tmp_path}/registry.db")

    assert seen["environ"] == ["ADMIN_TOKEN_FILE"]
    assert seen["admin"] == (tmp_path / "data" / "admin_token").read_text().strip()


def test_a_secret_file_is_checked_and_left_in_its_file(tmp_path):
    (tmp_path / "key").write_text("k\n")
    environ = {"SECRET_KEY_FILE": str(tmp_path / "key")}

    check_secret_files(environ)

    assert environ == {"SECRET_KEY_FILE": str(tmp_path / "key")}


@pytest.mark.parametrize("make, environ, message", [
    (None, {"ADMIN_TOKEN_FILE": "{dir}/absent"}, "ADMIN_TOKEN_FILE={dir}/absent: cannot read it (No such file or directory)"),
    (None, {"DATABASE_URL_FILE": "{dir}"}, "DATABASE_URL_FILE={dir}: cannot read it (Is a directory)"),
    ("\n", {"ADMIN_TOKEN_FILE": "{dir}/secret"}, "ADMIN_TOKEN_FILE={dir}/secret is empty"),
    (b"\xff\xfe", {"ADMIN_TOKEN_FILE": "{dir}/secret"}, "ADMIN_TOKEN_FILE={dir}/secret: cannot read it ('utf-8' codec"),
    ("t", {"ADMIN_TOKEN_FILE": "{dir}/secret", "ADMIN_TOKEN": "t2"}, "ADMIN_TOKEN and ADMIN_TOKEN_FILE are both set"),
    (None, {"SECRET_KEY_FILE": "{dir}/absent"}, "SECRET_KEY_FILE={dir}/absent: cannot read it (No such file or directory)"),
    ("k", {"SECRET_KEY_FILE": "{dir}/secret", "SECRET_KEY": "k2"}, "SECRET_KEY and SECRET_KEY_FILE are both set"),
], ids=["missing", "a-directory", "empty", "not-text", "both-set", "key-missing", "key-both-set"])
def test_a_secret_file_that_gives_no_secret_stops_the_start_with_one_line(tmp_path, make, environ, message):
    if isinstance(make, str):
        (tmp_path / "secret").write_text(make)
    elif make is not None:
        (tmp_path / "secret").write_bytes(make)
    environ = {key: value.format(dir=tmp_path) for key, value in environ.items()}

    with pytest.raises(CannotStart) as stopped:
        check_secret_files(environ)

    assert str(stopped.value).startswith(message.format(dir=tmp_path)) and "\n" not in str(stopped.value)


def test_the_admin_token_is_made_once_kept_private_and_printed_only_when_made(tmp_path, capsys):
    made = kept_admin_token(tmp_path / "data")
    first = capsys.readouterr().out
    again = kept_admin_token(tmp_path / "data")
    second = capsys.readouterr().out

    assert made.startswith("mr_") and again == made
    assert (tmp_path / "data" / "admin_token").stat().st_mode & 0o777 == 0o600
    assert made in first and f"cat {tmp_path / 'data' / 'admin_token'}" in first
    assert made not in second and f"cat {tmp_path / 'data' / 'admin_token'}" in second


def test_replicas_that_start_at_once_migrate_one_at_a_time(tmp_path):
    script = f"from pathlib import Path; from deploy.entrypoint import migrate; migrate({{url!r}}, Path({str(BASE_DIR / 'migrations')!r}))"
    with fresh_database(tmp_path) as url:
        with ThreadPoolExecutor(REPLICAS) as pool:
            runs = list(pool.map(lambda _: subprocess.run([sys.executable, "-c", script.format(url=url)], cwd=BASE_DIR,
                                                          capture_output=True, text=True, timeout=300, check=False),
                                 range(REPLICAS)))
        assert [run.returncode for run in runs] == [0] * REPLICAS, [run.stderr[-2000:] for run in runs]
        assert sum("Running upgrade  -> 0001" in run.stderr for run in runs) == 1  # one migrated; the others found the head
        assert _at_head(url)


def test_a_database_that_does_not_answer_stops_the_start_with_one_line():
    with pytest.raises(CannotStart) as stopped:
        migrate("postgresql+psycopg://registry:s3cret@127.0.0.1:9/registry", BASE_DIR / "migrations")

    assert str(stopped.value).startswith("DATABASE_URL=postgresql+psycopg://registry:***@127.0.0.1:9/registry: "
                                         "the database does not answer (")
    assert "s3cret" not in str(stopped.value) and "\n" not in str(stopped.value)


def test_a_database_that_starts_late_is_waited_for_up_to_database_wait_seconds(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'late' / 'registry.db'}"
    (tmp_path / "late").write_text("a file where the database's directory should be")  # cannot open: not yet there
    threading.Timer(1.5, lambda: (tmp_path / "late").unlink()).start()  # the directory can be made from now on

    migrate(url, BASE_DIR / "migrations", wait_seconds=30)

    assert "waiting for the database" in capsys.readouterr().out
    assert _at_head(url)


def test_waiting_for_a_database_ends_with_one_line_that_says_how_long():
    with pytest.raises(CannotStart) as stopped:
        migrate("postgresql+psycopg://registry:s3cret@127.0.0.1:9/registry", BASE_DIR / "migrations", wait_seconds=2)

    assert "the database does not answer after 2 s (DATABASE_WAIT_SECONDS) (" in str(stopped.value)


class DropsSomeConnections(CuttableProxy):
    """A proxy that forwards every connection but those numbered in ``dropped`` (1 is the first), which it
    closes at once: the database as a replica sees it while its name or its server comes and goes."""

    def __init__(self, upstream, dropped: set[int]):
        super().__init__(upstream)
        self.dropped, self.accepted = dropped, 0

    def _accept(self, listener) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            self.accepted += 1
            if self.accepted in self.dropped:
                client.close()
                continue
            server = socket.create_connection(self.upstream, timeout=5)
            server.settimeout(None)
            with self._lock:
                self._open.update((client, server))
            threading.Thread(target=self._pump, args=(client, server), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client), daemon=True).start()


@pytest.mark.skipif(BACKEND != "postgresql", reason="a database across the network: the PostgreSQL pass runs it")
def test_a_database_lost_for_a_moment_during_the_migration_is_waited_for_within_database_wait_seconds(tmp_path, capsys):
    """Issue 47, item 7: the first connection answers, the migration's own connection is dropped (a
    replica of a compose fleet met a DNS failure there), and so is the next try: the start waits."""
    with fresh_database(tmp_path) as url:
        parsed = make_url(url)
        with DropsSomeConnections((parsed.host, parsed.port or 5432), dropped={2, 3}) as proxy:
            migrate(parsed.set(host=proxy.host, port=proxy.port).render_as_string(hide_password=False),
                    BASE_DIR / "migrations", wait_seconds=60)

        assert proxy.accepted >= 5 and "waiting for the database" in capsys.readouterr().out
        assert _at_head(url)


def test_a_migration_that_fails_for_another_reason_than_the_database_stops_at_once(tmp_path, capsys):
    with fresh_database(tmp_path) as url:
        engine = create_engine(url)
        with engine.begin() as connection:
            connection.execute(text("CREATE TABLE api_tokens (clash INTEGER)"))  # the first table 0001 makes
        engine.dispose()
        with pytest.raises(CannotStart) as stopped:
            migrate(url, BASE_DIR / "migrations", wait_seconds=60)

    assert "migrating failed" in str(stopped.value) and "\n" not in str(stopped.value)
    assert "waiting for the database" not in capsys.readouterr().out  # not tried again


def _at_head(url: str) -> bool:
    """Whether the database at ``url`` is at the migrations' head."""
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_heads() == (ScriptDirectory(MIGRATIONS).get_current_head(),)
    finally:
        engine.dispose()
