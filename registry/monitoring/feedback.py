"""Feedback: the truth about logged predictions, joined to them the moment it arrives.

Each item names a request id and its label; it is checked against the one answer of the model
logged under that id, and written beside it with the time it came (the label's delay is
``labelled_at - at``). What cannot apply is reported item by item, never dropped quietly: an id
nothing was logged under (not sampled, or past the retention) is a 404, an id two or more answers
were logged under is a 409 (ids may be the callers': a stranger who sends a known id again must
never receive its label, so a label goes to no answer rather than perhaps the wrong one), a label
of the wrong kind or count, or not a finite number, a 422. An answer refused with an error does
not count (a retry under the same id is labelled). A second label for the same request replaces
the first, and is counted so.
The shadow run logged under the same request id gets the label too (the shadow's quality is what
a shadow rollout is for).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from sqlalchemy import select

from registry.db import write_transaction
from registry.lookups import find_model
from registry.monitoring.log_bounds import label_bytes
from registry.monitoring.tables import LoggedPrediction
from registry.serving.routing import SHADOW
from registry.tables import ModelVersion, utcnow

MAX_ITEMS = 10_000
_CHUNK = 500  # request ids per query (SQLite binds at most 999 values)


@dataclass(frozen=True)
class FeedbackResult:
    """How many labels were written, how many of them replaced an earlier one, and what did not apply."""

    applied: int = 0
    replaced: int = 0
    errors: list[dict] = field(default_factory=list)


def apply_feedback(name: str, items: list[dict]) -> FeedbackResult:
    """Label ``name``'s logged predictions: ``items`` are ``{"request_id", "label"}``, in order (a later
    item for the same request wins)."""
    model = find_model(name)
    applied = replaced = 0
    errors = []
    with write_transaction() as session:
        logged, shadows, ambiguous = _answers_by_request(session, model.id, {item["request_id"] for item in items})
        tasks = _tasks(session, model.id, {row.version for row in logged.values()})
        now = utcnow()
        for index, item in enumerate(items):
            request_id, label = item["request_id"], item["label"]
            row = logged.get(request_id)
            problem = (_AMBIGUOUS if request_id in ambiguous
                       else _problem(row, label, tasks.get(row.version) if row is not None else None))
            if problem is not None:
                errors.append({"index": index, "request_id": request_id, "status": problem[0], "detail": problem[1]})
                continue
            if row.labelled_at is not None:
                replaced += 1
            for labelled in (row, *shadows.get(request_id, ())):
                labelled.bytes += label_bytes(label) - label_bytes(labelled.label)  # it counts against the bound
                labelled.label, labelled.labelled_at = label, now
            applied += 1
    return FeedbackResult(applied, replaced, errors)


def _answers_by_request(session, model_id: int, request_ids: set[str]) -> tuple[dict, dict, set]:
    """The newest logged answer of each request id (a successful one, when there is one), the shadow
    runs logged after it under the same id, and the ids two or more successful answers were logged
    under (ids are the callers', so one may repeat)."""
    found: dict[str, LoggedPrediction] = {}
    shadows: dict[str, list[LoggedPrediction]] = {}
    ambiguous: set[str] = set()
    ordered = sorted(request_ids)
    for start in range(0, len(ordered), _CHUNK):
        query = (select(LoggedPrediction)
                 .where(LoggedPrediction.model_id == model_id, LoggedPrediction.request_id.in_(ordered[start:start + _CHUNK]))
                 .order_by(LoggedPrediction.id.desc()))
        for row in session.execute(query).scalars():
            if row.route == SHADOW:
                if row.request_id not in found:  # newer than the answer found next
                    shadows.setdefault(row.request_id, []).append(row)
            else:
                earlier = found.setdefault(row.request_id, row)
                if earlier is not row and row.status < 400:
                    if earlier.status < 400:
                        ambiguous.add(row.request_id)
                    else:  # a retry under the id succeeded after this failure: the success is labelled
                        found[row.request_id] = row
    return found, shadows, ambiguous


def _tasks(session, model_id: int, numbers: set[int]) -> dict[int, str]:
    if not numbers:
        return {}
    query = select(ModelVersion.number, ModelVersion.task).where(
        ModelVersion.model_id == model_id, ModelVersion.number.in_(sorted(numbers)))
    return {number: task for number, task in session.execute(query)}


_AMBIGUOUS = (409, "two or more answers were logged under this request id, so the label could reach the "
                   "wrong one: send a new id with each request (or leave X-Request-ID out and quote the "
                   "id the answer's X-Request-ID header carries)")
_ECHO = 40  # characters of a refused value quoted in a detail


def _problem(row: LoggedPrediction | None, label: object, task: str | None) -> tuple[int, str] | None:
    """Why ``label`` cannot label ``row`` (status, detail), or None when it can."""
    if row is None:
        return 404, ("no prediction of this model was logged under this request id: it was not sampled "
                     "(raise the model's prediction_log sample), is older than PREDICTION_LOG_DAYS, or was "
                     "answered less than a second ago (send it again)")
    if row.status >= 400 or not row.outputs or "predictions" not in row.outputs:
        return 422, f"this request was answered with an error ({row.status}): there is no prediction to label"
    predictions = row.outputs["predictions"]
    labels = label if isinstance(label, list) else [label]
    if len(labels) != len(predictions):
        return 422, (f"the request had {len(predictions)} rows: send one label per row, as a list"
                     if len(predictions) > 1 else "the request had one row: send one label, not a list")
    for value in labels:
        wrong = _wrong_label(value, task, predictions[0])
        if wrong:
            return 422, wrong
    return None


def _wrong_label(value: object, task: str | None, predicted: object) -> str | None:
    if isinstance(value, float) and not math.isfinite(value):
        return f"a label is a finite number or a class, not {value!r} (1e400 is past the largest double)"
    if task == "regression":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"a regressor's label is a finite number, not {_quoted(value)}"
        return None
    numeric = isinstance(predicted, (int, float)) and not isinstance(predicted, bool)
    if numeric and (isinstance(value, bool) or not isinstance(value, (int, float))):
        return f"this classifier's classes are numbers: {_quoted(value)} is not one"
    if isinstance(predicted, str) and not isinstance(value, str):
        return f"this classifier's classes are text: {_quoted(value)} is not one"
    if isinstance(predicted, bool) and not isinstance(value, bool):
        return f"this classifier's classes are true and false: {_quoted(value)} is not one"
    return None


def _quoted(value: object) -> str:
    """``value`` as a detail quotes it: its first characters only, so a huge label makes a small error."""
    shown = repr(value)
    return shown if len(shown) <= _ECHO else f"{shown[:_ECHO]}… ({len(shown):,} characters)"
