"""The PostgreSQL server a test run uses: the one at TEST_POSTGRES_URL, or a throwaway one.

When nothing answers at the URL (a fresh machine, or PostgreSQL installed but not running), the run
starts its own server from the installed binaries with pytest-postgresql's executor, in a temporary
directory, and removes it at the end. initdb and postgres refuse to run as root, so under root the
server runs as the ``postgres`` user that Debian's package creates.
"""
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
from pytest_postgresql.executors import PostgreSQLExecutor

from bench.harness.databases import libpq_conninfo
from bench.harness.server import free_port

STARTUP_TIMEOUT_SECONDS = 60
INSTALL_HINT = "apt-get install postgresql"
SERVER_USER = "postgres"
# Nothing of a throwaway cluster has to survive a crash.
THROWAWAY_SETTINGS = "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"


class NoPostgres(RuntimeError):
    """Nothing answers at the URL and there is nothing to start a server with."""


def answers(url: str) -> bool:
    """Whether a PostgreSQL server accepts a connection at ``url``."""
    try:
        psycopg.connect(libpq_conninfo(url), connect_timeout=3).close()
    except psycopg.OperationalError:
        return False
    return True


def find_pg_ctl(search: tuple[str, ...] = ("/usr/lib/postgresql/*/bin",)) -> str | None:
    """The server's pg_ctl: next to ``pg_config --bindir``, else the newest under ``search``, else on PATH."""
    candidates = []
    try:
        bindir = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, check=True).stdout.strip()
        candidates.append(os.path.join(bindir, "pg_ctl"))
    except (OSError, subprocess.CalledProcessError):
        pass
    for pattern in search:
        found = glob.glob(os.path.join(pattern, "pg_ctl"))
        candidates += sorted(found, key=lambda path: [int(p) for p in Path(path).parts[-3].split(".") if p.isdigit()],
                             reverse=True)
    candidates.append(shutil.which("pg_ctl") or "")
    return next((path for path in candidates if path and os.access(path, os.X_OK)), None)


def missing_server_message(url: str, pg_ctl: str | None) -> str | None:
    """One line saying what to install when no server answers at ``url`` and none can be started; else None."""
    if answers(url):
        return None
    if pg_ctl is None:
        return f"no PostgreSQL answers at {url} and none is installed to start one: {INSTALL_HINT}"
    if os.geteuid() == 0 and not _user_exists(SERVER_USER):
        return f"no PostgreSQL answers at {url}, and as root a throwaway one needs the {SERVER_USER!r} user: {INSTALL_HINT}"
    return None


@contextmanager
def postgres_server(url: str, pg_ctl: str | None = None) -> Iterator[str]:
    """``url`` if a server answers there, else the URL of a throwaway server running for the block."""
    if answers(url):
        yield url
        return
    pg_ctl = pg_ctl or find_pg_ctl()
    problem = missing_server_message(url, pg_ctl)
    if problem:
        raise NoPostgres(problem)
    with throwaway_server(pg_ctl) as throwaway:
        yield throwaway.url


@dataclass
class Throwaway:
    """A throwaway server: its URL, and stopping and starting it again (an outage)."""

    url: str
    executor: PostgreSQLExecutor

    def stop(self) -> None:
        """Shut the server down (``pg_ctl stop``: connections are cut)."""
        self.executor.stop()

    def start(self) -> None:
        """Start it again on the same data and port, and wait until it answers."""
        self.executor.start()
        _wait_until_it_answers(self.url, Path(self.executor.logfile))


@contextmanager
def throwaway_server(pg_ctl: str) -> Iterator[Throwaway]:
    """A new cluster (superuser ``postgres``, trust auth) on a free port, removed afterwards."""
    root = Path(tempfile.mkdtemp(prefix="registry-test-postgres-"))
    try:
        executable = _as_server_user(pg_ctl, root)
        port = free_port()
        executor = PostgreSQLExecutor(
            executable=executable, host="127.0.0.1", port=port, datadir=str(root / "data"),
            unixsocketdir=str(root), logfile=str(root / "postgresql.log"), startparams="-w",
            dbname="postgres", user="postgres", postgres_options=THROWAWAY_SETTINGS,
        )
        executor.start()
        try:
            url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
            _wait_until_it_answers(url, Path(executor.logfile))
            yield Throwaway(url, executor)
        finally:
            executor.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _wait_until_it_answers(url: str, log: Path) -> None:
    """The port opens while the server still replays its startup; wait for a real connection."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while not answers(url):
        if time.monotonic() > deadline:
            raise NoPostgres(f"the throwaway PostgreSQL did not answer in {STARTUP_TIMEOUT_SECONDS}s: {log.read_text()[-2000:]}")
        time.sleep(0.1)


def _as_server_user(pg_ctl: str, root: Path) -> str:
    """``pg_ctl`` itself, or under root a wrapper running it as the postgres user in a directory it owns."""
    if os.geteuid() != 0:
        return pg_ctl
    account = pwd.getpwnam(SERVER_USER)
    os.chown(root, account.pw_uid, account.pw_gid)
    wrapper = root / "pg_ctl"
    wrapper.write_text(f'#!/bin/sh\ncd "{root}" && exec runuser -u {SERVER_USER} -- "{pg_ctl}" "$@"\n')
    wrapper.chmod(0o755)
    return str(wrapper)


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True
