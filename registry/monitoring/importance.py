"""Global importance and attribution drift, from the explanations the prediction log kept
(:mod:`registry.monitoring.logged_explanations`).

A version's global importance over a window is, per input column, the mean absolute attribution over
the window's explained rows (where the space has a value per class, the absolute values are summed over
the classes first: one figure per column, whatever the kind). Its shares (the figures divided by their
sum) say how the version spreads its answers over its inputs; two versions that use their inputs alike
have like shares, whatever the scale of their outputs.

Attribution drift compares a rollout's canary with its primary on the same traffic (each arm's own
answers over the window): the total variation distance between their shares, ½ Σ |p − q|, from 0 (the
same use of every column) to 1 (no column in common). It is judged only once each arm has ``min_rows``
explained rows.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta

import numpy as np
from sqlalchemy import select

from registry.db import db
from registry.lookups import find_model, find_version, running_canaries
from registry.monitoring.tables import LoggedPrediction
from registry.tables import utcnow

MAX_REQUESTS = 10_000  # the window's newest explained requests read at most


@dataclass(frozen=True)
class Importance:
    """A version's mean absolute attribution per input column over a window, and what it stands on."""

    model: str
    version: int
    window: str
    since: datetime
    requests: int  # logged requests whose explanations were read
    rows: int  # the rows they explained
    space: str | None  # the explanations' space (prediction, probability, margin); None without any
    columns: dict[str, float]  # column -> mean |attribution|, the largest first
    route: str | None = None  # only the answers of this route (a rollout's arm) were read; None: all of them

    @property
    def shares(self) -> dict[str, float]:
        """Each column's share of the total (summing to 1; all 0 when nothing moved the answers)."""
        total = sum(self.columns.values())
        return {column: value / total if total else 0.0 for column, value in self.columns.items()}


@dataclass(frozen=True)
class AttributionDrift:
    """A rollout's canary's importance beside its primary's, their distance, and whether it crossed the threshold."""

    model: str
    alias: str
    primary: Importance
    canary: Importance
    min_rows: int
    threshold: float
    distance: float | None  # None until both arms have min_rows explained rows

    @property
    def drifted(self) -> bool:
        """Whether the distance is past the threshold."""
        return self.distance is not None and self.distance > self.threshold

    @property
    def moved(self) -> list[str]:
        """The columns whose share moved, the most first (those that moved by less than 1 % left out)."""
        before, after = self.primary.shares, self.canary.shares
        change = {column: abs(after.get(column, 0.0) - before.get(column, 0.0)) for column in {*before, *after}}
        return [column for column, moved in sorted(change.items(), key=lambda item: (-item[1], item[0]))
                if moved >= 0.01]


def importance(name: str, ref: str, *, window: str, span: timedelta, route: str | None = None) -> Importance:
    """Version ``ref`` (a number, an alias or ``latest``) of ``name``: its global importance over the ``span``
    (named ``window``) that ends now, from its newest ``MAX_REQUESTS`` explained answers in it (of ``route``
    only, when given: ``primary``, ``canary``)."""
    model = find_model(name)
    version = find_version(model, ref)
    since = utcnow() - span
    query = (select(LoggedPrediction.explanations)
             .where(LoggedPrediction.model_id == model.id, LoggedPrediction.version == version.number,
                    LoggedPrediction.at >= since, LoggedPrediction.status == 200,
                    LoggedPrediction.explanations.is_not(None))
             .order_by(LoggedPrediction.id.desc()).limit(MAX_REQUESTS))
    if route is not None:
        query = query.where(LoggedPrediction.route == route)
    found = [kept for kept in db.session.execute(query).scalars() if kept]
    requests, rows, space, columns = _mean_absolute(found)
    return Importance(model=model.name, version=version.number, window=window, since=since, requests=requests,
                      rows=rows, space=space, columns=columns, route=route)


def attribution_drift(name: str, alias: str, *, primary: int, canary: int, window: str, span: timedelta,
                      min_rows: int, threshold: float) -> AttributionDrift:
    """The canary's importance beside the primary's on ``alias``'s rollout, each over its own route's
    answers in the window, and the total variation distance between their shares."""
    first = importance(name, str(primary), window=window, span=span, route="primary")
    second = importance(name, str(canary), window=window, span=span, route="canary")
    distance = None
    if min(first.rows, second.rows) >= min_rows:
        distance = total_variation(first.shares, second.shares)
    return AttributionDrift(name, alias, first, second, min_rows, threshold, distance)


@dataclass(frozen=True)
class VersionImportance(Importance):
    """A version's importance, and the attribution drift of each running rollout it is an arm of."""

    rollouts: list[AttributionDrift] = field(default_factory=list)


def version_importance(name: str, ref: str, *, window: str, span: timedelta, min_rows: int,
                       threshold: float) -> VersionImportance:
    """Version ``ref`` of ``name``: its importance over the window (:func:`importance`), and the attribution
    drift of every running rollout of the model whose primary or canary it is."""
    found = importance(name, ref, window=window, span=span)
    drifts = [attribution_drift(name, alias, primary=primary, canary=canary, window=window, span=span,
                                min_rows=min_rows, threshold=threshold)
              for _, alias, primary, canary in running_canaries(name) if found.version in (primary, canary)]
    return VersionImportance(**{kept.name: getattr(found, kept.name) for kept in fields(Importance)}, rollouts=drifts)


def total_variation(p: dict[str, float], q: dict[str, float]) -> float:
    """½ Σ |p − q| over the columns of either (a column one side lacks counts 0 there)."""
    return 0.5 * sum(abs(p.get(column, 0.0) - q.get(column, 0.0)) for column in {*p, *q})


def _mean_absolute(kept: list[dict]) -> tuple[int, int, str | None, dict[str, float]]:
    """(requests, rows, space, column -> mean |value|) of stored explanations; a request whose columns differ
    from the newest one's is left out (a version's columns do not change: it cannot happen but by hand)."""
    if not kept:
        return 0, 0, None, {}
    columns = kept[0]["columns"]
    sums, rows, requests = np.zeros(len(columns)), 0, 0
    for explained in kept:
        if explained.get("columns") != columns:
            continue
        values = np.abs(np.asarray(explained["values"], dtype=np.float64))
        if values.ndim == 3:  # a value per class: summed over the classes
            values = values.sum(axis=2)
        sums += values.sum(axis=0)
        rows += len(values)
        requests += 1
    means = sums / rows if rows else sums
    ranked = sorted(zip(columns, means.tolist()), key=lambda item: (-item[1], item[0]))
    return requests, rows, kept[0]["space"], dict(ranked)
