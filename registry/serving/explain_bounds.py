"""What an explanation may cost, known before it starts, and when it must end.

A tree model's exact explanation (path-dependent TreeSHAP, ``registry.inference.tree_shap``) costs each row its
**row cost**: the nodes of its trees × the quadrature points its deepest path needs × its outputs, in
node-points, known once the version is loaded (and at upload), before any row is explained. A linear model's
costs one product a row, which only ``MAX_EXPLAIN_ROWS`` bounds. For a tree model:

- a version whose one row costs more than ``max_row_cost`` (``EXPLAIN_MAX_ROW_COST``) is not explainable: asked
  to explain, it answers 422 (:class:`NotExplainable`) before any work, and its upload says so
  (``explainable: false`` with the reason, :func:`verdict`);
- a request whose rows cost more than ``max_cost`` (``EXPLAIN_MAX_COST``) is refused before its prediction is
  computed (413, :class:`BatchTooLarge`, naming how many rows fit);
- the cost decides the call's lane as rows × trees does a prediction's: from ``LOW_PRIORITY_FROM_WALKS`` walks'
  worth (:func:`registry.inference.tree_shap.walks_for`) it runs at a lower CPU priority;
- once started it ends by its deadline: the caller's ``X-Request-Timeout`` or ``timeout_seconds``
  (``EXPLAIN_TIMEOUT_SECONDS``) from its start, whichever comes first. The compiled walk reads the clock every
  few hundred nodes and stops; the request is answered 503 with Retry-After (:class:`ExplanationTimedOut`) and
  its thread is free at once.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from registry.errors import BatchTooLarge, NotExplainable
from registry.inference.predictors import LinearPredictor, TreePredictor
from registry.inference.tree_shap import NotExplainable as RecordsNotExplainable


@dataclass(frozen=True)
class ExplainBounds:
    """The bounds of one request's explanation: its rows, one row's cost and all of its rows' (node-points),
    and its seconds."""

    max_rows: int = 500  # MAX_EXPLAIN_ROWS
    max_row_cost: int = 20_000_000  # EXPLAIN_MAX_ROW_COST
    max_cost: int = 500_000_000  # EXPLAIN_MAX_COST
    timeout_seconds: float = 10.0  # EXPLAIN_TIMEOUT_SECONDS

    def deadline(self, caller_at: float | None) -> float:
        """When an explanation that starts now must end (``time.monotonic()`` seconds): ``timeout_seconds`` from
        now, or the caller's deadline ``caller_at`` when that is sooner."""
        at = time.monotonic() + self.timeout_seconds
        return at if caller_at is None else min(at, caller_at)


def row_cost(predictor) -> int | None:
    """The node-points one row of ``predictor``'s explanation costs; None where it is not a tree model's (a linear
    model's costs a product a row). ``NotExplainable`` (the inference's) when its trees cannot be explained."""
    if not isinstance(predictor, TreePredictor):
        return None
    return predictor.compiled.explainer().row_cost


def verdict(predictor, bounds: ExplainBounds) -> tuple[bool, str | None, int | None]:
    """``(explainable, why not, row cost)`` of a version whose predictor is ``predictor``, as its upload records it:
    a model its library serves, trees that hold no usable covers, and a row cost over ``max_row_cost`` are not."""
    if not isinstance(predictor, (TreePredictor, LinearPredictor)):
        return False, ("served by its library, not by a compiled form: explanations exist for trees, forests, "
                       "boosted trees and linear and logistic models"), None
    try:
        cost = row_cost(predictor)
    except RecordsNotExplainable as error:
        return False, str(error), None
    if cost is not None and cost > bounds.max_row_cost:
        return False, _too_costly(cost, bounds), cost
    return True, None, cost


def admit(predictor, n_rows: int, bounds: ExplainBounds, *, where: str) -> None:
    """Refuse, before any work, an explanation of ``n_rows`` rows by ``predictor`` (the version ``where`` names)
    over ``bounds``: :class:`BatchTooLarge` for too many rows or too costly a request, :class:`NotExplainable` for
    a version whose one row costs too much or whose trees cannot be explained."""
    if n_rows > bounds.max_rows:
        raise BatchTooLarge(
            f"asked to explain {n_rows:,} rows; the limit is {bounds.max_rows:,} (MAX_EXPLAIN_ROWS), since an exact "
            "explanation costs tens of predictions a row: explain fewer rows per request, or predict without explain")
    try:
        cost = row_cost(predictor)
    except RecordsNotExplainable as error:
        raise NotExplainable(f"{where} cannot be explained: {error}") from None
    if cost is None:
        return
    if cost > bounds.max_row_cost:
        raise NotExplainable(f"{where} is not explainable: {_too_costly(cost, bounds)}",
                             errors={"row_cost": cost, "max_row_cost": bounds.max_row_cost})
    if n_rows * cost > bounds.max_cost:
        fit = bounds.max_cost // cost
        raise BatchTooLarge(
            f"explaining {n_rows:,} rows of {where} would cost {n_rows * cost:,} node-points ({cost:,} a row); one "
            f"request may cost {bounds.max_cost:,} (EXPLAIN_MAX_COST): explain at most {fit:,} rows per request, or "
            "predict without explain")


def _too_costly(cost: int, bounds: ExplainBounds) -> str:
    return (f"one row's exact explanation would cost {cost:,} node-points (its trees' nodes × the quadrature points "
            f"its deepest path needs × its outputs), more than EXPLAIN_MAX_ROW_COST={bounds.max_row_cost:,}; its "
            "predictions are served as ever")
