"""Throwaway PostgreSQL databases for the benchmarks and the tests.

The server is ``TEST_POSTGRES_URL`` (default the local one on 127.0.0.1:5432, user postgres).
"""
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from sqlalchemy.engine import make_url

POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def libpq_conninfo(url: str) -> str:
    """A SQLAlchemy URL (``postgresql+psycopg://…``) as psycopg takes it."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@contextmanager
def postgres_database(server_url: str = POSTGRES_URL, *, durable: bool = True) -> Iterator[str]:
    """A new, empty database on ``server_url`` for the duration of the block; its SQLAlchemy URL.

    ``durable=False`` lets its commits return before the WAL reaches the disk (a crash may lose the
    last ones, never half of one): what a database thrown away at the end of the run can afford.
    """
    server = make_url(server_url)
    name = f"registry_test_{uuid.uuid4().hex[:12]}"
    conninfo = libpq_conninfo(server_url)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
        if not durable:
            conn.execute(f'ALTER DATABASE "{name}" SET synchronous_commit = off')
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
