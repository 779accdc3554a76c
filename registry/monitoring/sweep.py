"""The monitoring sweep: every ``MONITOR_SECONDS`` one process of the fleet (whoever holds the
``monitoring`` lease) works out the live quality and drift of every served version over
``MONITOR_WINDOW``, keeps them in ``version_health`` (which ``/metrics`` shows on every replica),
and sends ``model.drift`` when a column drifts that had not at the last sweep. For every running
rollout with a canary it also compares the canary's global importance with its primary's
(:mod:`registry.monitoring.importance`), and sends ``model.attribution_drift`` when their distance
passes ``ATTRIBUTION_DRIFT`` where it had not at the last sweep (kept among the canary's drifted
columns as ``attributions@<alias>``, so a drift that lasts is announced once).

What is kept is bounded by what is served: a version no alias or rollout serves any more loses its
row at the next sweep. The sweep reads the prediction log only; it never touches a prediction.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import timedelta

from sqlalchemy import select

from registry.db import end_read, write_transaction
from registry.events import outbox
from registry.lookups import running_canaries, served_versions
from registry.monitoring.importance import AttributionDrift, attribution_drift
from registry.monitoring.quality import Monitoring, Thresholds, monitoring
from registry.monitoring.tables import VersionHealth
from registry.tables import RegisteredModel, utcnow

log = logging.getLogger(__name__)

LEASE = "monitoring"
PREDICTIONS = "predictions"  # the name the predictions' drift goes by among the drifted columns
ATTRIBUTIONS = "attributions@"  # a canary's attribution drift on an alias, among its drifted columns


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
    attribution_threshold: float = 0.2  # ATTRIBUTION_DRIFT: the total variation distance past which a canary has drifted
    attribution_min_rows: int = 100  # ATTRIBUTION_MIN_ROWS: explained rows each arm needs before it is judged


@dataclass(frozen=True)
class SweepResult:
    """What one sweep did: how many versions it measured, and the drift and attribution drift alerts it sent."""

    versions: int
    alerts: list[dict]
    attribution_alerts: list[dict] = field(default_factory=list)


def sweep(settings: SweepSettings) -> SweepResult:
    """Measure every served version now, keep the figures, and alert on new drift (call it holding the lease)."""
    served = served_versions()
    canaries = running_canaries()
    end_read()
    attributions: dict[tuple[str, int], list[AttributionDrift]] = {}
    for name, alias, primary, canary in canaries:
        attributions.setdefault((name, canary), []).append(attribution_drift(
            name, alias, primary=primary, canary=canary, window=settings.window, span=settings.span,
            min_rows=settings.attribution_min_rows, threshold=settings.attribution_threshold))
    alerts, attribution_alerts = [], []
    for name, number in served:
        figures = monitoring(name, str(number), window=settings.window, span=settings.span,
                             thresholds=settings.thresholds, name_value=settings.name_value)
        alert, moved = _keep(figures, attributions.get((name, number), []))
        if alert is not None:
            log.warning("drift: version %s of %r drifted in %s", number, name, ", ".join(alert["columns"]))
            alerts.append(alert)
        for found in moved:
            log.warning("attribution drift: canary %s of %r on %r leans on its inputs unlike primary %s "
                        "(distance %.3f)", found["canary"], name, found["alias"], found["primary"], found["distance"])
        attribution_alerts += moved
    _forget_all_but(served)
    return SweepResult(len(served), alerts, attribution_alerts)


def drifted_columns(drift: dict | None) -> list[str]:
    """The features (and ``predictions``) a monitoring answer's drift marks as drifted."""
    if not drift:
        return []
    columns = [name for name, judged in drift["features"].items() if judged["drifted"]]
    return sorted(columns) + ([PREDICTIONS] if drift["predictions"]["drifted"] else [])


def _keep(figures: Monitoring, attributions: list[AttributionDrift]) -> tuple[dict | None, list[dict]]:
    """Store ``figures`` as the version's health; the ``model.drift`` data sent when a column newly drifted,
    and the ``model.attribution_drift`` data sent for each rollout the version (a canary) newly drifted on."""
    drifted = drifted_columns(figures.drift)
    with write_transaction() as session:
        model_id = session.execute(select(RegisteredModel.id).where(RegisteredModel.name == figures.model)).scalar_one()
        row = session.get(VersionHealth, (model_id, figures.version))
        before = set(row.drifted) if row is not None else set()
        if row is None:
            row = VersionHealth(model_id=model_id, version=figures.version)
            session.add(row)
        # A drift not judged this time (too few rows in the window) stays as it was: announced once.
        leaning = [ATTRIBUTIONS + found.alias for found in attributions
                   if found.drifted or (found.distance is None and ATTRIBUTIONS + found.alias in before)]
        row.computed_at, row.figures, row.drifted = utcnow(), _jsonable(figures), drifted + leaning
        moved = [_attribution_alert(found, figures.window) for found in attributions
                 if ATTRIBUTIONS + found.alias in leaning and ATTRIBUTIONS + found.alias not in before]
        for alert in moved:
            outbox.record("model.attribution_drift", alert)
        new = [column for column in drifted if column not in before]
        if not new:
            return None, moved
        alert = {"model": figures.model, "version": figures.version, "window": figures.window, "columns": new,
                 "drifted": drifted, "drift": figures.drift}
        outbox.record("model.drift", alert)
    return alert, moved


def _attribution_alert(found: AttributionDrift, window: str) -> dict:
    """The ``model.attribution_drift`` data: which arms, how far apart, on how many rows, and the columns whose
    share moved (by name only: a receiver holds no token, and attributions tell about the inputs)."""
    return {"model": found.model, "alias": found.alias, "primary": found.primary.version,
            "canary": found.canary.version, "window": window, "distance": found.distance,
            "threshold": found.threshold, "rows": {"primary": found.primary.rows, "canary": found.canary.rows},
            "moved": found.moved}


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
