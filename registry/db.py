"""The database handle, its naming convention, and transactions that serialise writers.

The only module of the domain that touches Flask-SQLAlchemy.
"""
from collections.abc import Iterator
from contextlib import contextmanager

from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import MetaData, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Session

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

SQLITE_BUSY_TIMEOUT_MS = 30_000


class Base(DeclarativeBase):
    """Declarative base whose metadata names constraints, so Alembic can alter them."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


db = SQLAlchemy(model_class=Base)


def configure_sqlite(engine: Engine) -> None:
    """WAL, a busy timeout and explicit BEGINs, so writers queue instead of failing (once per engine)."""
    if not event.contains(engine, "connect", _on_sqlite_connect):
        event.listen(engine, "connect", _on_sqlite_connect)
        event.listen(engine, "begin", _on_sqlite_begin)


def _on_sqlite_connect(dbapi_connection, _record) -> None:
    # Let SQLAlchemy emit BEGIN itself (pysqlite's implicit BEGIN cannot be IMMEDIATE).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _on_sqlite_begin(connection) -> None:
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
    session.connection(execution_options={"write": True})
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise


def end_read() -> None:
    """Close a read-only transaction so it holds no snapshot or lock across a long request."""
    db.session.rollback()
