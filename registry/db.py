"""The database handle, its naming convention, and transactions that serialise writers.

The only module of the domain that touches Flask-SQLAlchemy (and Flask-Migrate, set up once here).
"""
import os
from collections.abc import Iterator
from contextlib import contextmanager

from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import MetaData, event
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Session

from registry import finite_json
from registry.errors import DatabaseFileGone

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

SQLITE_BUSY_TIMEOUT_MS = 30_000
# A pooled SQLite connection's file and its identity when it opened (device and inode).
SQLITE_FILE = "sqlite_file"


class Base(DeclarativeBase):
    """Declarative base whose metadata names constraints, so Alembic can alter them."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


# JSON columns hold finite numbers only, on both backends (registry/finite_json.py).
db = SQLAlchemy(model_class=Base, engine_options={"json_serializer": finite_json.dumps})


def attach_migrations(app, directory: str) -> None:
    """Flask-Migrate's one setup for the registry's database: the scripts in ``directory``, and ALTERs
    written as batches (SQLite rebuilds a table to alter it). The app's ``flask db`` commands and the
    container's entrypoint both call this."""
    from flask_migrate import Migrate  # Alembic takes long to import; serving never migrates

    Migrate(app, db, directory=directory, render_as_batch=True)


def configure_sqlite(engine: Engine) -> None:
    """WAL, a busy timeout and explicit BEGINs, so writers queue instead of failing (once per engine)."""
    if not event.contains(engine, "connect", _on_sqlite_connect):
        event.listen(engine, "connect", _on_sqlite_connect)
        event.listen(engine, "begin", _on_sqlite_begin)


SQLITE_INCREMENTAL_VACUUM = 2  # PRAGMA auto_vacuum's answer for INCREMENTAL


def _on_sqlite_connect(dbapi_connection, connection_record) -> None:
    # Let SQLAlchemy emit BEGIN itself (pysqlite's implicit BEGIN cannot be IMMEDIATE).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    # First: what follows may wait for another process's lock rather than fail at once.
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    # Takes effect only in a database without tables yet (migration 0014 rebuilds an older one once):
    # pages the prediction log's pruning frees can then be given back (registry/monitoring/log_bounds.py).
    # Asked only where it is not set: setting it writes, which a lock held elsewhere would make wait.
    if cursor.execute("PRAGMA auto_vacuum").fetchone()[0] != SQLITE_INCREMENTAL_VACUUM:
        cursor.execute("PRAGMA auto_vacuum=INCREMENTAL")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    path = next((row[2] for row in cursor.execute("PRAGMA database_list") if row[1] == "main"), "")
    cursor.close()
    if path:
        connection_record.info[SQLITE_FILE] = (path, _identity(path))


def _on_sqlite_begin(connection) -> None:
    if connection.get_execution_options().get("isolation_level") == "AUTOCOMMIT":
        return  # asked for no transaction (a migration's VACUUM, in Alembic's autocommit_block)
    immediate = connection.get_execution_options().get("write", False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


@contextmanager
def write_transaction() -> Iterator[Session]:
    """One unit of work that writes: commits on success, rolls back on any error.

    On SQLite it starts with BEGIN IMMEDIATE so concurrent writers wait for each other instead of
    failing on a lock upgrade; on PostgreSQL use cases lock the rows they change.
    """
    session = db.session()  # the scoped session's Session for this app context
    if session.in_transaction():
        session.rollback()  # a read-only snapshot from earlier in the request; nothing to keep
    try:
        check_sqlite_file(session.connection(execution_options={"write": True}))
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise


def check_sqlite_file(connection) -> None:
    """Refuse (DatabaseFileGone) a SQLite connection whose file was deleted or replaced since it opened:
    what it wrote would be lost. The connection is dropped, so the next one opens the file at the path."""
    known = connection.info.get(SQLITE_FILE)
    if known is None:
        return
    path, identity = known
    if _identity(path) != identity:
        connection.invalidate()
        raise DatabaseFileGone(
            f"the SQLite database file {path} was deleted or replaced while the server ran, so nothing was written; "
            "put the file back, or restart the server to use the one now at that path"
        )


def _identity(path: str) -> tuple[int, int] | None:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_dev, stat.st_ino


def end_read() -> None:
    """Close a read-only transaction so it holds no snapshot or lock across a long request."""
    db.session.rollback()


def on_postgresql() -> bool:
    """True when the session's database is PostgreSQL (else it is SQLite, the only other backend)."""
    return db.session.get_bind().dialect.name == "postgresql"


def upsert_insert(table):
    """``insert(table)`` of the session's dialect, which has ``on_conflict_do_nothing``/``_do_update``."""
    return (pg_insert if on_postgresql() else sqlite_insert)(table)
