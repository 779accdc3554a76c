"""Throwaway databases for tests: a migrated SQLite file, or a fresh PostgreSQL database.

``TEST_DATABASE=postgresql`` runs the suite on PostgreSQL: the server at ``TEST_POSTGRES_URL``
(default the local one on 127.0.0.1:5432) or, when none answers there, a throwaway server the run
starts from the installed binaries (``tests/postgres_server.py``). The PostgreSQL pass never skips.
"""
import os
from collections.abc import Iterator
from contextlib import contextmanager

from bench.harness.databases import POSTGRES_URL, postgres_database

BACKEND = os.environ.get("TEST_DATABASE", "sqlite")
_server = {"url": POSTGRES_URL}


def use_postgres_server(url: str) -> None:
    """Create this run's PostgreSQL databases on the server at ``url`` (the session fixture sets it)."""
    _server["url"] = url


@contextmanager
def fresh_database(tmp_dir) -> Iterator[str]:
    """An empty database of the backend under test."""
    if BACKEND == "postgresql":
        with postgres_database(_server["url"], durable=False) as url:
            yield url
    else:
        yield f"sqlite:///{tmp_dir}/registry.db"
