"""The baseline a linear or logistic version's explanations are measured from: the mean of its drift
reference's rows in the model's own features (after its Pipeline's steps), made when the reference is sent
(:func:`reference_mean`) and kept with it; a version without one is explained against the all-zeros row of
its features (``registry.serving.explanations``), and its answers say which.

Each process reads a version's mean once, on its first explanation, and keeps it until the registry changes
(:class:`ExplainReferences`): sending a reference marks its model changed, which this process learns at the
commit and every other one within ``ALIAS_REFRESH_SECONDS`` (the alias watcher's observers), as a model's
prediction-log share is learnt.
"""
from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager

import numpy as np

from registry.changes import ModelChanged
from registry.db import db, end_read
from registry.errors import NotFound
from registry.lookups import find_model, find_version
from registry.monitoring.tables import DriftReference
from registry.serving.cache import ServableModel
from registry.serving.explanations import model_features, takes_reference

KEPT = 256  # versions whose mean a process keeps at most (all are forgotten at any change of the registry)
MEAN = "explain_mean"  # the profile's member that holds it


def reference_mean(servable: ServableModel, rows) -> list[float] | None:
    """The mean of ``rows`` (a reference's rows, checked against the signature) in ``servable``'s own features,
    for a version explained against it (a linear or logistic one); None for any other."""
    if not takes_reference(servable):
        return None
    return model_features(servable, rows).mean(axis=0).tolist()


class ExplainReferences:
    """A process's reference means of the versions it explains, read from the database on first use."""

    def __init__(self, session_scope: Callable[[], AbstractContextManager]):
        self._session_scope = session_scope
        self._means: dict[tuple[str, int], np.ndarray | None] = {}
        self._lock = threading.Lock()

    def __call__(self, servable: ServableModel) -> np.ndarray | None:
        """``servable``'s reference mean in its model's features; None when it has no reference (or one sent
        before means were kept)."""
        key = (servable.model, servable.version)
        with self._lock:
            if key in self._means:
                return self._means[key]
        mean = self._read(*key)
        with self._lock:
            if len(self._means) >= KEPT:
                self._means.clear()
            self._means[key] = mean
        return mean

    def forget(self) -> None:
        """Read every mean again on its next use (the registry changed: a reference may have been sent)."""
        with self._lock:
            self._means.clear()

    def apply(self, changes: Iterable) -> None:
        """Forget the means of the models whose changes this process just committed."""
        changed = {change.model for change in changes if isinstance(change, ModelChanged)}
        if changed:
            with self._lock:
                self._means = {key: mean for key, mean in self._means.items() if key[0] not in changed}

    def _read(self, name: str, number: int) -> np.ndarray | None:
        with self._session_scope():
            try:
                version = find_version(find_model(name), number)
            except NotFound:
                return None
            row = db.session.get(DriftReference, version.id)
            stored = (row.profile or {}).get(MEAN) if row is not None else None
            end_read()
        if not isinstance(stored, list) or not stored:
            return None
        try:
            mean = np.asarray(stored, dtype=np.float64)
        except (TypeError, ValueError):  # not numbers: as if none was kept
            return None
        return mean if mean.ndim == 1 and np.isfinite(mean).all() else None
