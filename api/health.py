"""What readiness means, checked in one place for /readyz and the Open Inference Protocol's ready route."""
from flask import current_app
from sqlalchemy import text

from api import domain
from registry.db import check_sqlite_file, db
from registry.errors import DatabaseFileGone


def readiness() -> tuple[dict[str, bool], dict[str, str]]:
    """Each dependency of this process, true when it is usable; and why, for those that are not."""
    problems = {"database": database_problem()}
    if not domain.store().is_reachable():
        problems["artifact_store"] = "the artifact store cannot be written"
    checks = {"database": problems["database"] is None, "artifact_store": "artifact_store" not in problems}
    return checks, {name: why for name, why in problems.items() if why}


def store_warnings() -> list[str]:
    """A nearly full store is a warning, not unreadiness: predictions still work, only uploads will fail."""
    free = domain.store().free_bytes()
    minimum_mb = current_app.config["MIN_FREE_STORE_MB"]
    if free is None or free >= minimum_mb * 1024 * 1024:
        return []
    return [
        f"the artifact store has {free / 1024 / 1024:.1f} MB free, under MIN_FREE_STORE_MB={minimum_mb}: "
        "uploads will soon be refused with 507; free space (`flask --app wsgi artifacts gc`) or grow the volume"
    ]


def database_problem() -> str | None:
    """Why the database cannot be used now, or None when it answers with its schema (and a SQLite
    connection's file is still the one at its path)."""
    try:
        db.session.execute(text("SELECT version_num FROM alembic_version"))
        check_sqlite_file(db.session.connection())
        return None
    except DatabaseFileGone as exc:
        return exc.detail
    except Exception as exc:  # readiness reports any failure as not ready rather than raising
        return f"the database does not answer, or holds no schema (flask db upgrade) ({type(exc).__name__})"
    finally:
        db.session.rollback()
