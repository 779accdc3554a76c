"""What readiness means, checked in one place for /readyz and the Open Inference Protocol's ready route."""
from flask import current_app
from sqlalchemy import text

from api import domain
from registry.db import db


def readiness_checks() -> dict[str, bool]:
    """Each dependency of this process, true when it is reachable."""
    return {"database": _database_ok(), "artifact_store": domain.store().is_reachable()}


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


def _database_ok() -> bool:
    try:
        db.session.execute(text("SELECT 1"))
        db.session.rollback()
        return True
    except Exception:  # readiness reports any failure as not ready rather than raising
        db.session.rollback()
        return False
