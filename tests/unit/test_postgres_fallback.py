"""Where no PostgreSQL answers, the PostgreSQL pass starts its own from the installed binaries."""
from pathlib import Path

import psycopg

from bench.harness.databases import libpq_conninfo, postgres_database
from bench.harness.server import free_port
from tests.postgres_server import answers, missing_server_message, postgres_server


def closed_url() -> str:
    """A PostgreSQL URL nothing listens at: PostgreSQL installed but not running, or not installed."""
    return f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/postgres"


def test_with_nothing_listening_a_throwaway_server_serves_the_block_and_is_removed_after():
    nothing_there = closed_url()
    assert not answers(nothing_there)
    before = set(Path("/tmp").glob("registry-test-postgres-*/data"))

    with postgres_server(nothing_there) as url:
        with postgres_database(url, durable=False) as database, psycopg.connect(libpq_conninfo(database)) as conn:
            assert conn.execute("SELECT current_setting('fsync'), 1 + 1").fetchone() == ("off", 2)
        with postgres_server(url) as again:
            assert again == url  # a server that answers is used as it is
        data_dirs = set(Path("/tmp").glob("registry-test-postgres-*/data")) - before

    assert url != nothing_there and data_dirs
    assert not answers(url)
    assert not any(path.exists() for path in data_dirs)


def test_without_a_server_or_binaries_the_failure_is_one_line_naming_what_to_install():
    message = missing_server_message(closed_url(), pg_ctl=None)

    assert message.endswith("apt-get install postgresql")
    assert "\n" not in message
