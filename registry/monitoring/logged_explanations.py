"""Explanations kept in the prediction log: computed by the log's writer thread, off the request path,
for the share of a model's logged answers its setting ``prediction_log.explain`` asks for.

A logged row keeps them (``explanations``) as one JSON object that names the columns once:

    {"space": "prediction" | "probability" | "margin", "columns": [input column, …],
     "base_value": number | [one per class], "values": [[one per column (a list per class where the space
     has several)], … one per row]}

so that, for each row, ``base_value + Σ values`` is the answer in ``space``, as the predict routes'
``explain`` gives it (:mod:`registry.serving.explanations`). A request's first ``MAX_EXPLAIN_ROWS`` rows
are explained. A version that cannot be explained (one its library serves, or whose Pipeline mixes input
columns, so that its attributions are not per input column) logs none, and no error.

Explaining costs the writer tens of predictions a row; :class:`TimeBudget` keeps it to a share of one core
(``EXPLAIN_CPU_SHARE``), so a flood of explained answers never makes the writer fall behind the log itself:
past it, answers are logged without explanations, and counted.
"""
from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from registry.errors import ArtifactCorrupted, BatchTooLarge, ExplanationTimedOut, InvalidInput, NotExplainable
from registry.serving.cache import ServableModel
from registry.serving.explain_bounds import ExplainBounds, admit
from registry.serving.explanations import Explanations, explain, takes_reference

EXPLAIN_CPU_SHARE = 0.25  # of one core's time: what the writer may spend explaining, on average
BURST_SECONDS = 1.0  # what it may spend at once, after a quiet while


class TimeBudget:
    """Seconds to spend, given back at ``share`` of a second per second, holding at most ``burst``."""

    def __init__(self, share: float = EXPLAIN_CPU_SHARE, burst: float = BURST_SECONDS,
                 clock: Callable[[], float] = time.monotonic):
        self._share, self._burst, self._clock = share, burst, clock
        self._left, self._at = burst, clock()

    def allows(self) -> bool:
        """Whether anything is left to spend now."""
        self._refill()
        return self._left > 0

    def spend(self, seconds: float) -> None:
        """Take ``seconds`` off what is left (it may go below zero: the next work waits for it to come back)."""
        self._refill()
        self._left -= seconds

    def _refill(self) -> None:
        now = self._clock()
        self._left = min(self._burst, self._left + (now - self._at) * self._share)
        self._at = now


def explain_logged(servable: ServableModel, rows, *, bounds: ExplainBounds, asked: Explanations | None = None,
                   reference: Callable[[ServableModel], np.ndarray | None] = lambda servable: None) -> dict | None:
    """The stored form of the explanations of ``rows`` (what ``servable`` was given) by ``servable``, its
    first ``bounds.max_rows`` rows; the caller's own (``asked``) when it asked for them, else in the version's own
    space, a linear one's against ``reference(servable)``, within ``bounds`` (what they would cost, and when they
    must end). None when the version cannot be explained per input column, or not within the bounds."""
    if asked is None:
        first = _first(rows, bounds.max_rows)
        try:
            admit(servable.predictor, len(first), bounds, where=f"version {servable.version} of {servable.model!r}")
            mean = reference(servable) if takes_reference(servable) else None
            asked = explain(servable, first, reference=mean, until=bounds.deadline(None))
        except (NotExplainable, InvalidInput, ArtifactCorrupted, BatchTooLarge, ExplanationTimedOut):
            return None  # a version without explanations (or too costly ones) logs none
    if not asked.by_input_column or not asked.rows:
        return None
    kept = asked.rows[:bounds.max_rows]
    columns = list(kept[0]["values"])
    return {"space": asked.space, "columns": columns, "base_value": kept[0]["base_value"],
            "values": [[row["values"][column] for column in columns] for row in kept]}


def _first(rows, count: int):
    """The first ``count`` rows of a model input (an array or a DataFrame)."""
    if len(rows) <= count:
        return rows
    return rows.iloc[:count] if hasattr(rows, "iloc") else rows[:count]
