"""The monitoring sweep: every ``MONITOR_SECONDS`` one process of the fleet (whoever holds the
``monitoring`` lease) works out the live quality and drift of every served version over
``MONITOR_WINDOW``, keeps them in ``version_health`` (which ``/metrics`` shows on every replica),
and sends ``model.drift`` when a column drifts that had not at the last sweep.

What is kept is bounded by what is served: a version no alias or rollout serves any more loses its
row at the next sweep. The sweep reads the prediction log only; it never touches a prediction.
"""
from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from datetime import timedelta

from sqlalchemy import select

from registry.db import end_read, write_transaction
from registry.events import outbox
from registry.lookups import served_versions
from registry.monitoring.quality import Monitoring, Thresholds, monitoring
from registry.monitoring.tables import VersionHealth
from registry.tables import RegisteredModel, utcnow

log = logging.getLogger(__name__)

LEASE = "monitoring"
PREDICTIONS = "predictions"  # the name the predictions' drift goes by among the drifted columns


@dataclass(frozen=True)
class SweepSettings:
    """How often to sweep, over which window, and when a column has drifted."""

    every_seconds: float  # MONITOR_SECONDS; 0: never in the background (``flask monitoring sweep`` still works)
    window: str  # MONITOR_WINDOW, e.g. "1h"
    span: timedelta
    thresholds: Thresholds
    # How a categorical bin is named in the kept figures and the ``model.drift`` alert (a webhook's
    # receiver holds no token): by its keyed hash (registry.monitoring.masking), never the value.
    name_value: Callable[[object], str]


@dataclass(frozen=True)
class SweepResult:
    """What one sweep did: how many versions it measured, and the drift alerts it sent."""

    versions: int
    alerts: list[dict]


def sweep(settings: SweepSettings) -> SweepResult:
    """Measure every served version now, keep the figures, and alert on new drift (call it holding the lease)."""
    served = served_versions()
    end_read()
    alerts = []
    for name, number in served:
        figures = monitoring(name, str(number), window=settings.window, span=settings.span,
                             thresholds=settings.thresholds, name_value=settings.name_value)
        alert = _keep(figures)
        if alert is not None:
            log.warning("drift: version %s of %r drifted in %s", number, name, ", ".join(alert["columns"]))
            alerts.append(alert)
    _forget_all_but(served)
    return SweepResult(len(served), alerts)


def drifted_columns(drift: dict | None) -> list[str]:
    """The features (and ``predictions``) a monitoring answer's drift marks as drifted."""
    if not drift:
        return []
    columns = [name for name, judged in drift["features"].items() if judged["drifted"]]
    return sorted(columns) + ([PREDICTIONS] if drift["predictions"]["drifted"] else [])


def _keep(figures: Monitoring) -> dict | None:
    """Store ``figures`` as the version's health; the ``model.drift`` data sent when a column newly drifted."""
    drifted = drifted_columns(figures.drift)
    with write_transaction() as session:
        model_id = session.execute(select(RegisteredModel.id).where(RegisteredModel.name == figures.model)).scalar_one()
        row = session.get(VersionHealth, (model_id, figures.version))
        before = set(row.drifted) if row is not None else set()
        if row is None:
            row = VersionHealth(model_id=model_id, version=figures.version)
            session.add(row)
        row.computed_at, row.figures, row.drifted = utcnow(), _jsonable(figures), drifted
        new = [column for column in drifted if column not in before]
        if not new:
            return None
        alert = {"model": figures.model, "version": figures.version, "window": figures.window, "columns": new,
                 "drifted": drifted, "drift": figures.drift}
        outbox.record("model.drift", alert)
    return alert


def _forget_all_but(served: list[tuple[str, int]]) -> None:
    """Drop the health of versions nothing serves any more."""
    keep = set(served)
    with write_transaction() as session:
        found = session.execute(
            select(VersionHealth, RegisteredModel.name).join(RegisteredModel, RegisteredModel.id == VersionHealth.model_id)
        ).all()
        for row, name in found:
            if (name, row.version) not in keep:
                session.delete(row)


def _jsonable(figures: Monitoring) -> dict:
    return json.loads(json.dumps(asdict(figures), default=str))
