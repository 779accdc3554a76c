"""What readiness means, checked in one place for /readyz and the Open Inference Protocol's ready route.

Ready means "can serve predictions". A process that has read its aliases keeps answering them from
memory while the database or the artifact store is down: it stays ready, and says it is degraded. A new
process is not ready until it holds every aliased version it could not fetch for want of the store.
A stopping server is not ready from the moment it got SIGTERM, so load balancers stop sending to it
while it finishes what it has.

No probe waits on a dependency: the database and the store are checked on loops of their own (built with
the app, started and stopped by its lifecycle), and a
check that has not answered within ``CHECK_DEADLINE_SECONDS`` is reported as a problem ("did not answer
within 0.8 s") at once, for as long as it hangs (``registry/serving/probes.py``). A stalled store thus
makes probes say ``degraded``, quickly, and holds none of the threads that answer predictions.
"""
from collections.abc import Callable
from dataclasses import dataclass

from flask import Flask, current_app
from sqlalchemy import text

from api import background, domain, lifecycle
from api.settings import settings_of
from config import MB
from registry import stopping
from registry.db import check_sqlite_file, db
from registry.errors import DatabaseFileGone
from registry.serving.probes import Probe, ProbeAnswer
from registry.telemetry import DEPENDENCY_UP

# How long a probe waits for a dependency's check; the image's HEALTHCHECK gives a probe 5 s.
CHECK_DEADLINE_SECONDS = 0.8
PROBES = "readiness_probes"
# How long a stopping worker waits for a check in progress (one that hangs is left to its daemon thread).
STOP_WAIT_SECONDS = 1.0


@dataclass(frozen=True)
class Readiness:
    """Each dependency's check, why the failing ones fail, and whether this process can serve."""

    checks: dict[str, bool]
    problems: dict[str, str]
    can_serve: bool

    @property
    def status(self) -> str:
        """``ready``, or ``degraded`` while serving with a dependency down."""
        return "degraded" if self.problems else "ready"


def readiness() -> Readiness:
    """Check the database and the artifact store, each within CHECK_DEADLINE_SECONDS (and say so in
    ``registry_dependency_up``)."""
    probes = _probes()
    problems = {
        "database": _problem(probes["database"].answer(), "the database"),
        "artifact_store": _problem(probes["artifact_store"].answer(), f"the artifact store {domain.store().location}"),
    }
    for name, why in problems.items():
        DEPENDENCY_UP.labels(name).set(0 if why else 1)
    serving = domain.runtime().models.readiness
    starved = serving.starved()
    if starved and problems["artifact_store"] is None:  # it answered since: loads are due at the next poll
        problems["artifact_store"] = "aliased versions are still being fetched from the artifact store"
    can_serve = (problems["database"] is None or serving.knows_its_aliases) and not starved
    if stopping.requested():
        problems["server"] = "stopping (SIGTERM): finishing the requests in flight"
        can_serve = False
    return Readiness(
        checks={name: why is None for name, why in problems.items()},
        problems={name: why for name, why in problems.items() if why},
        can_serve=can_serve,
    )


def warnings() -> list[str]:
    """What is wrong without stopping predictions: a nearly full store, models over their memory budget,
    stored copies the artifact scrub found damaged, a prediction log near its bound or stopped."""
    return store_warnings() + memory_warnings() + damage_warnings() + prediction_log_warnings()


def prediction_log_warnings() -> list[str]:
    """The prediction log near PREDICTION_LOG_MAX_MB, stopped for want of space on the database's volume,
    holding models whose rows wait for the lake, or failing to export."""
    return domain.prediction_log().warnings() + export_warnings()


def export_warnings() -> list[str]:
    """Models whose rows could not be exported to PREDICTION_LOG_EXPORT at the last attempt (as this process
    last read them from the database, off the request path: every replica says it)."""
    exporter = background.log_exporter(current_app)
    if exporter is None:
        return []
    return [
        f"the prediction log of {name!r} could not be exported to {exporter.location} ({failures} attempts failed since "
        f"{since.strftime('%Y-%m-%dT%H:%M:%SZ')}; last: {error}): its rows stay in the database, past "
        "PREDICTION_LOG_DAYS and PREDICTION_LOG_MAX_MB if need be, and the export is tried again every "
        f"{exporter.settings.every_seconds:g} s"
        for name, failures, since, error in exporter.failing
    ]


def damage_warnings() -> list[str]:
    """Stored copies the artifact scrub found damaged or missing (read by a background loop, not here)."""
    return [
        f"the artifact store's copy of {found.sha256} ({', '.join(found.versions)}) is {found.status} since "
        f"{found.since.strftime('%Y-%m-%dT%H:%M:%SZ')}: this machine serves it from its cached copy, kept until the "
        "store is repaired; re-upload the original file (or restore it from a backup)"
        for found in background.damage_report(current_app).current()
    ]


def memory_warnings() -> list[str]:
    """Versions that aliases and rollouts serve stay loaded even past MODEL_MEMORY_MB; say so."""
    over = domain.runtime().models.cache.pinned_over_budget
    if not over:
        return []
    return [
        f"the versions aliases and rollouts serve hold {over / 2**20:.1f} MB more than MODEL_MEMORY_MB="
        f"{settings_of().serving.model_memory_bytes / MB:g} in this worker: they stay loaded, and every other version is let "
        "go as soon as another one loads; raise MODEL_MEMORY_MB"
    ]


def store_warnings() -> list[str]:
    """A nearly full store is a warning, not unreadiness: predictions still work, only uploads will fail.
    (Space that cannot be read in time is no warning: the store's check says it did not answer.)"""
    answer = _probes()["store_space"].answer()
    free = None if answer.unanswered or answer.error else answer.value
    minimum = settings_of().storage.min_free_bytes
    if free is None or free >= minimum:
        return []
    return [
        f"the artifact store has {free / MB:.1f} MB free, under MIN_FREE_STORE_MB={minimum / MB:g}: "
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


def init_app(app: Flask) -> None:
    """Build the app's dependency checks, whose loops its lifecycle starts and stops."""
    probes = app.extensions[PROBES] = {
        "database": Probe("database", _in_app(app, lambda: database_problem()), CHECK_DEADLINE_SECONDS),
        "artifact_store": Probe("artifact-store", _in_app(app, lambda: domain.store().problem()),
                                CHECK_DEADLINE_SECONDS),
        "store_space": Probe("store-space", _in_app(app, lambda: domain.store().free_bytes()), CHECK_DEADLINE_SECONDS),
    }

    def stop() -> None:
        for probe in probes.values():
            probe.stop(STOP_WAIT_SECONDS)

    lifecycle.of(app).add("readiness probes", start=lambda: [probe.start() for probe in probes.values()], stop=stop)


def _probes() -> dict[str, Probe]:
    """This app's dependency checks."""
    return current_app.extensions[PROBES]


def _in_app(app: Flask, check: Callable[[], object]) -> Callable[[], object]:
    """``check`` run in an app context of its own (its own database session), on the probe's thread."""
    def run():
        with app.app_context():
            return check()

    return run


def _problem(answer: ProbeAnswer, what: str) -> str | None:
    """A dependency check's answer as a readiness problem (None: none)."""
    if answer.unanswered and answer.waiting_seconds < CHECK_DEADLINE_SECONDS:
        return f"{what} has not answered this process's first check yet"
    if answer.unanswered:
        return (f"{what} did not answer within {CHECK_DEADLINE_SECONDS:g} s (asked {answer.waiting_seconds:.0f} s "
                "ago); loaded models are still served")
    if answer.error is not None:
        return f"{what} could not be checked ({type(answer.error).__name__}: {str(answer.error)[:200]})"
    return answer.value
