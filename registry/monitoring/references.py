"""Drift references: the rows a version was trained or evaluated on, profiled once, so that drift is
judged against what the version learned rather than against its first day of traffic.

The caller (the trainers CLI, or anyone with the rows) sends up to ``MAX_ROWS`` rows in any predict
body shape; they are checked against the version's signature, answered by the version itself (the
reference of its predictions), and profiled per feature (``registry.monitoring.drift``); a linear or
logistic version also keeps their mean in its model's features, which its explanations are measured from
(``registry.monitoring.explain_references``). The
profiles are kept: bins with their counts, and at most ``SAMPLE`` values per numeric column for the
KS test; and ``GATE_ROWS`` of the rows, drawn evenly, which a rollout plan's agreement gate scores
both arms on (no route returns them). A version has one reference; sending another replaces it.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np

from registry.changes import ModelChanged, record
from registry.db import db, end_read, write_transaction
from registry.errors import NotFound, VersionArchived
from registry.lookups import find_model, find_version
from registry.monitoring.drift import Profile, profile
from registry.monitoring.explain_references import MEAN, reference_mean
from registry.monitoring.tables import DriftReference
from registry.serving.inputs import rows_from_json
from registry.serving.running import run_model
from registry.serving.runtime import Runtime
from registry.tables import ModelVersion, utcnow

MAX_ROWS = 10_000
SAMPLE = 1_000  # values of a numeric column kept for the KS test
GATE_ROWS = 500  # rows kept, drawn evenly, for a rollout's agreement gate: rows no caller of the service chose
SOURCES = ("training", "evaluation")


@dataclass(frozen=True)
class Reference:
    """A version's drift reference: where its rows came from, how many, and each column's profile."""

    model: str
    version: int
    source: str
    rows: int
    features: dict[str, Profile]
    predictions: Profile
    created_at: datetime
    created_by: str


def set_reference(runtime: Runtime, *, name: str, ref: str, source: str, body: dict, actor: str) -> Reference:
    """Profile the rows of ``body`` (a predict body) as version ``ref``'s drift reference, from ``source``."""
    number, version_id = _ready_version(name, ref)
    servable = runtime.models.servable(name, str(number))
    rows = rows_from_json(body, servable.signature, MAX_ROWS)
    predictions = run_model(servable, rows, False).predictions
    features = {feature: profile(column, keep_sample=True, max_sample=SAMPLE)
                for feature, column in zip(servable.signature.names, _columns(rows))}
    stored = {"features": {feature: p.to_dict() for feature, p in features.items()},
              "predictions": profile(predictions, keep_sample=True, max_sample=SAMPLE).to_dict()}
    mean = reference_mean(servable, rows)
    if mean is not None:
        stored[MEAN] = mean
    with write_transaction() as session:
        row = session.get(DriftReference, version_id)
        if row is None:
            row = DriftReference(version_id=version_id)
            session.add(row)
        row.source, row.rows, row.profile, row.created_at, row.created_by = source, len(predictions), stored, utcnow(), actor
        row.gate_rows = _evenly(list(zip(*_columns(rows))), GATE_ROWS)
        if mean is not None:  # every process reads the version's explanation baseline again
            find_model(name, lock=True).updated_at = utcnow()
            record(ModelChanged(name))
    return get_reference(name, str(number))


def get_reference(name: str, ref: str) -> Reference:
    """Version ``ref``'s drift reference; NotFound when none was sent."""
    version = find_version(find_model(name), ref)
    row = stored_reference(version)
    if row is None:
        raise NotFound(f"version {version.number} of {name!r} has no drift reference: PUT its training or "
                       "evaluation rows here (until then drift is judged against its first served traffic)")
    return _reference(version, row)


def stored_reference(version: ModelVersion) -> DriftReference | None:
    """The stored reference row of ``version``, if one was sent."""
    return db.session.get(DriftReference, version.id)


def reference_profiles(row: DriftReference) -> tuple[dict[str, Profile], Profile]:
    """The feature profiles and the predictions' profile of a stored reference."""
    features = {name: Profile.from_dict(stored) for name, stored in row.profile["features"].items()}
    return features, Profile.from_dict(row.profile["predictions"])


def agreement_rows(*versions: ModelVersion) -> tuple[list, ...]:
    """Rows none of the service's callers chose, to score ``versions`` on for a rollout's agreement gate:
    the rows kept of the first one's drift reference that has some, else the first one's input example
    (both sent by those allowed to upload and profile versions)."""
    for version in versions:
        row = stored_reference(version)
        if row is not None and row.gate_rows:
            return tuple(row.gate_rows)
    for version in versions:
        if version.input_example:
            return tuple(version.input_example)
    return ()


def _evenly(rows: list, count: int) -> list[list]:
    """At most ``count`` of ``rows``, drawn evenly from first to last."""
    if len(rows) > count:
        rows = [rows[i] for i in np.linspace(0, len(rows) - 1, count).round().astype(int)]
    return [list(row) for row in rows]


def _ready_version(name: str, ref: str) -> tuple[int, int]:
    """(number, id) of version ``ref`` when it is not archived."""
    version = find_version(find_model(name), ref)
    if version.status == "archived":
        raise VersionArchived(f"version {version.number} of {name!r} is archived; send the reference of a ready version")
    found = version.number, version.id
    end_read()  # loading the version may take a while: hold no snapshot meanwhile
    return found


def _columns(rows) -> list[list]:
    """Each column of the model's input as plain values (numbers as floats, categories as text)."""
    if isinstance(rows, np.ndarray):
        return [column.tolist() for column in rows.T]
    return [[value.item() if isinstance(value, np.generic) else value for value in rows[name].tolist()]
            for name in rows.columns]


def _reference(version: ModelVersion, row: DriftReference) -> Reference:
    features, predictions = reference_profiles(row)
    return Reference(model=version.model.name, version=version.number, source=row.source, rows=row.rows,
                     features=features, predictions=predictions, created_at=row.created_at, created_by=row.created_by)
