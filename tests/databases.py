"""Throwaway databases for tests: a migrated SQLite file, or a fresh PostgreSQL database.

``TEST_DATABASE=postgresql`` runs the suite on PostgreSQL (``TEST_POSTGRES_URL``, default the local
server on 127.0.0.1:5432). When PostgreSQL is asked for and cannot be reached, tests fail: they are
never skipped silently.
"""
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from sqlalchemy.engine import make_url

BACKEND = os.environ.get("TEST_DATABASE", "sqlite")
POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


@contextmanager
def postgres_database() -> Iterator[str]:
    """A new, empty PostgreSQL database for the duration of the block; its SQLAlchemy URL."""
    admin = make_url(POSTGRES_URL)
    name = f"registry_test_{uuid.uuid4().hex[:12]}"
    conninfo = admin.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield admin.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def fresh_database(tmp_dir) -> Iterator[str]:
    """An empty database of the backend under test."""
    if BACKEND == "postgresql":
        with postgres_database() as url:
            yield url
    else:
        yield f"sqlite:///{tmp_dir}/registry.db"
