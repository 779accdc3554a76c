"""Live quality and drift of a version, from its logged answers and the labels feedback brought.

Over a window ending now: how many requests were logged, how many carry a label, the median delay
of a label, and the quality of the labelled answers, row by row: a classifier's accuracy with its
Wilson interval, a regressor's mean absolute error (and root mean squared error) with a normal
interval; 95 % both. At most the newest ``MAX_LABELLED`` labelled requests are read.

Drift compares the rows of the window with a reference, per feature and for the predictions
(``registry.monitoring.drift``): the profile of the rows the version was trained or evaluated on
when they were sent (``registry.monitoring.references``), else the first ``REFERENCE_ROWS`` rows the
version answered (its first served traffic). It waits until the window holds ``MIN_ROWS`` rows
(past the first served ones).
"""
from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func, select

from registry.db import db
from registry.intervals import Z_95, wilson
from registry.lookups import find_model, find_version
from registry.monitoring.drift import compare, profile
from registry.monitoring.references import reference_profiles, stored_reference
from registry.monitoring.tables import LoggedPrediction
from registry.tables import ModelVersion, utcnow

MAX_LABELLED = 100_000
REFERENCE_ROWS = 1_000  # the version's first answered rows
MIN_ROWS = 100  # rows of the window past the reference, before drift is worth computing
MAX_RECENT_REQUESTS = 10_000  # the window's newest answered requests read for drift
DIRECT = "direct"  # the route of a request that named the version by number


@dataclass(frozen=True)
class Quality:
    """A quality figure with its 95 % interval, over ``rows`` labelled rows."""

    metric: str  # accuracy (classifiers) or mae (regressors)
    value: float
    ci_low: float
    ci_high: float
    rows: int
    rmse: float | None = None  # regressors only


@dataclass(frozen=True)
class RouteFigures:
    """What one route (rollout arm) brought a version over the window: requests, labels, quality."""

    requests: int
    labelled: int
    quality: Quality | None


@dataclass(frozen=True)
class Monitoring:
    """A version's logged traffic and its live quality over a window."""

    model: str
    version: int
    window: str
    since: datetime
    requests: int
    labelled: int
    label_delay_p50_s: float | None
    quality: Quality | None  # None until a label came
    drift: dict | None = None  # None until the reference is complete and the window holds MIN_ROWS more rows
    drift_detail: str | None = None  # why drift is None, and what would have it judged
    # By the route that reached the version: primary, canary, shadow (rollout arms), direct (by number).
    routes: dict[str, RouteFigures] = field(default_factory=dict)


def monitoring(name: str, ref: str, *, window: str, span: timedelta, thresholds: Thresholds | None,
               name_value: Callable[[object], str] = str, weighed_only: bool = False) -> Monitoring:
    """Version ``ref`` (a number, an alias or ``latest``) of ``name`` over the ``span`` (named ``window``)
    that ends now; drift flagged past ``thresholds`` (None: no drift worked out). A categorical
    feature's bin is named ``name_value(value)``: the value itself by default, or a name that hides it
    (see :mod:`registry.monitoring.masking`) for a caller who may not read logged inputs. With
    ``weighed_only``, only the answers a rollout's gates weigh count (each sticky key's first few)."""
    model = find_model(name)
    version = find_version(model, ref)
    since = utcnow() - span
    logged = (LoggedPrediction.model_id == model.id, LoggedPrediction.version == version.number,
              LoggedPrediction.at >= since) + ((LoggedPrediction.weighed.is_(True),) if weighed_only else ())
    by_route = dict(db.session.execute(
        select(LoggedPrediction.route, func.count()).where(*logged).group_by(LoggedPrediction.route)
    ).all())
    labelled_rows = _labelled(logged)
    delays = [(labelled_at - at).total_seconds() for _, _, _, at, labelled_at in labelled_rows]
    pairs = [pair for _, outputs, label, _, _ in labelled_rows for pair in _pairs(outputs, label)]
    drift, why = _drift(model.id, version, since, thresholds, name_value) if thresholds is not None else (None, None)
    return Monitoring(
        model=model.name, version=version.number, window=window, since=since, requests=sum(by_route.values()),
        labelled=len(labelled_rows), label_delay_p50_s=statistics.median(delays) if delays else None,
        quality=_quality(pairs, version.task) if pairs else None, drift=drift, drift_detail=why,
        routes=_routes(by_route, labelled_rows, version.task),
    )


@dataclass(frozen=True)
class QualityPoint:
    """The live quality of the answers given in one slice of a window (None: no label there yet)."""

    start: datetime
    end: datetime
    quality: Quality | None


def quality_timeline(name: str, ref: str, *, span: timedelta, slices: int = 12) -> list[QualityPoint]:
    """The live quality of version ``ref`` over the ``span`` ending now, in ``slices`` equal slices of
    answer time (oldest first): how it moved, with each slice's own interval."""
    model = find_model(name)
    version = find_version(model, ref)
    end = utcnow()
    since = end - span
    labelled_rows = _labelled((LoggedPrediction.model_id == model.id, LoggedPrediction.version == version.number,
                               LoggedPrediction.at >= since))
    step = span / slices
    points = []
    for i in range(slices):
        start, stop = since + i * step, since + (i + 1) * step
        pairs = [pair for _, outputs, label, at, _ in labelled_rows if start <= at < stop or (i == slices - 1 and at >= start)
                 for pair in _pairs(outputs, label)]
        points.append(QualityPoint(start, stop, _quality(pairs, version.task) if pairs else None))
    return points


def _labelled(logged: tuple) -> list:
    """(route, outputs, label, at, labelled_at) of the newest ``MAX_LABELLED`` labelled requests ``logged`` finds."""
    return db.session.execute(
        select(LoggedPrediction.route, LoggedPrediction.outputs, LoggedPrediction.label, LoggedPrediction.at,
               LoggedPrediction.labelled_at)
        .where(*logged, LoggedPrediction.labelled_at.is_not(None))
        .order_by(LoggedPrediction.id.desc()).limit(MAX_LABELLED)
    ).all()


def _routes(by_route: dict, labelled_rows: list, task: str) -> dict[str, RouteFigures]:
    """Requests, labels and quality per route, each route named (``direct``: asked by version number)."""
    figures = {}
    for route, requests in sorted(by_route.items(), key=lambda item: item[0] or DIRECT):
        rows = [row for row in labelled_rows if row[0] == route]
        pairs = [pair for _, outputs, label, _, _ in rows for pair in _pairs(outputs, label)]
        figures[route or DIRECT] = RouteFigures(requests, len(rows), _quality(pairs, task) if pairs else None)
    return figures


@dataclass(frozen=True)
class Thresholds:
    """When a column has drifted: its PSI above ``psi`` or its test's p-value below ``p_value``; a sent
    reference of fewer than ``min_reference_rows`` rows is too small to judge against."""

    psi: float
    p_value: float
    min_reference_rows: int = 100  # DRIFT_MIN_REFERENCE_ROWS


def _drift(model_id: int, version: ModelVersion, since: datetime, thresholds: Thresholds,
           name_value: Callable[[object], str]) -> tuple[dict | None, str | None]:
    """The drift of the window against the version's reference, or None and why."""
    answered = (LoggedPrediction.model_id == model_id, LoggedPrediction.version == version.number,
                LoggedPrediction.status == 200)
    logged = select(LoggedPrediction.id, LoggedPrediction.inputs, LoggedPrediction.outputs).where(*answered)
    names = [feature["name"] for feature in version.signature["features"]]
    send = f"PUT the rows it was trained or evaluated on to /models/{version.model.name}/versions/{version.number}/reference"
    stored = stored_reference(version)
    if stored is not None and stored.rows < thresholds.min_reference_rows:
        return None, (f"the drift reference of version {version.number} has {stored.rows} rows, too few to judge drift "
                      f"against (DRIFT_MIN_REFERENCE_ROWS is {thresholds.min_reference_rows}): {send}, at least "
                      f"{thresholds.min_reference_rows} of them")
    if stored is not None:
        features, predicted = reference_profiles(stored)
        source, reference_rows, after_id = stored.source, stored.rows, 0
    else:
        reference, after_id = _rows(logged.order_by(LoggedPrediction.id).limit(REFERENCE_ROWS), limit_rows=REFERENCE_ROWS)
        if len(reference) < REFERENCE_ROWS:
            return None, (f"no drift reference was sent and the version has answered {len(reference)} of the first "
                          f"{REFERENCE_ROWS} rows that would be its reference: {send}, or wait for them")
        features = {name: profile([row[j] for row, _ in reference], keep_sample=True) for j, name in enumerate(names)}
        predicted = profile([p for _, p in reference], keep_sample=True)
        source, reference_rows = "traffic", len(reference)
    recent, _ = _rows(logged.where(LoggedPrediction.at >= since, LoggedPrediction.id > after_id)
                      .order_by(LoggedPrediction.id.desc()).limit(MAX_RECENT_REQUESTS))
    if len(recent) < MIN_ROWS:
        past = " past its reference" if source == "traffic" else ""
        return None, (f"the window holds {len(recent)} answered rows{past}; drift is judged from {MIN_ROWS} "
                      "(a longer window, or more traffic)")
    judge = {"psi_threshold": thresholds.psi, "p_threshold": thresholds.p_value}
    judged = {name: _as_dict(compare(features[name], [row[j] for row, _ in recent], **judge, name_value=name_value))
              for j, name in enumerate(names) if name in features}
    return {"reference": source, "reference_rows": reference_rows, "recent_rows": len(recent), "features": judged,
            "predictions": _as_dict(compare(predicted, [p for _, p in recent], **judge))}, None


def _rows(query, limit_rows: int | None = None) -> tuple[list[tuple[list, object]], int]:
    """(input row, prediction) pairs of the requests ``query`` finds (up to ``limit_rows`` rows), and the
    id of the last request read."""
    found, last_id = [], 0
    for request_id, inputs, outputs in db.session.execute(query):
        for row, predicted in zip(inputs or [], (outputs or {}).get("predictions") or []):
            found.append((row, predicted))
        last_id = request_id
        if limit_rows is not None and len(found) >= limit_rows:
            break
    return found, last_id


def _as_dict(drift) -> dict:
    bins = [{"bin": name, "reference": before, "recent": now}
            for name, before, now in zip(drift.bins, drift.reference_shares, drift.recent_shares)]
    return {"psi": drift.psi, "p_value": drift.p_value, "test": drift.test, "drifted": drift.drifted, "bins": bins}


def _pairs(outputs: dict | None, label: object) -> list[tuple[object, object]]:
    """(predicted, true) for every row of a labelled request."""
    predictions = (outputs or {}).get("predictions") or []
    labels = label if isinstance(label, list) else [label]
    return list(zip(predictions, labels))


def _quality(pairs: list[tuple[object, object]], task: str) -> Quality:
    n = len(pairs)
    if task == "classification":
        right = sum(1 for predicted, true in pairs if predicted == true)
        low, high = wilson(right, n)
        return Quality("accuracy", right / n, low, high, n)
    errors = [abs(float(predicted) - float(true)) for predicted, true in pairs]
    mae = sum(errors) / n
    spread = statistics.stdev(errors) / math.sqrt(n) if n > 1 else math.inf
    rmse = math.sqrt(sum(e * e for e in errors) / n)
    return Quality("mae", mae, max(0.0, mae - Z_95 * spread), mae + Z_95 * spread, n, rmse)

