"""SQLite engines get WAL, a busy timeout, foreign keys and explicit BEGINs, once however often configured."""
from sqlalchemy import create_engine, event, text

from registry.db import configure_sqlite


def _engine(tmp_path, times: int):
    engine = create_engine(f"sqlite:///{tmp_path}/registry.db")
    for _ in range(times):
        configure_sqlite(engine)
    return engine


def _begins(engine, **options) -> list[str]:
    """The BEGINs one transaction with these execution options sends."""
    statements = []
    event.listen(engine, "before_cursor_execute", lambda _c, _cur, sql, *_: statements.append(sql))
    with engine.connect().execution_options(**options) as connection, connection.begin():
        connection.execute(text("SELECT 1"))
    return [sql for sql in statements if sql.startswith("BEGIN")]


def test_a_configured_engine_writes_in_wal_mode_with_foreign_keys_and_a_busy_timeout(tmp_path):
    with _engine(tmp_path, 1).connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert connection.execute(text("PRAGMA busy_timeout")).scalar() == 30_000


def test_a_write_transaction_begins_immediate_and_a_read_begins_deferred(tmp_path):
    assert _begins(_engine(tmp_path, 1), write=True) == ["BEGIN IMMEDIATE"]
    assert _begins(_engine(tmp_path, 1)) == ["BEGIN"]


def test_configuring_an_engine_again_adds_nothing(tmp_path):
    assert _begins(_engine(tmp_path, 3), write=True) == ["BEGIN IMMEDIATE"]
