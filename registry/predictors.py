"""What answers ``predict`` for a loaded model: compiled trees where they apply, the estimator itself otherwise.

``predictor_for`` runs once per load. A tree or random forest, bare or as a Pipeline's last step,
is compiled (``registry.fast_trees``); the steps before it still run through scikit-learn's
``transform``, exactly as ``Pipeline.predict`` runs them. Anything else is served by the estimator.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse
from sklearn.pipeline import Pipeline

from registry.fast_trees import CompiledTrees, compile_trees

class CompiledPredictor:
    """``predict``/``predict_proba`` of a tree model through its compiled form, with scikit-learn's answers."""

    def __init__(self, transforms: list, model, compiled: CompiledTrees):
        self.transforms = transforms
        self.model = model
        self.compiled = compiled
        if compiled.classes is not None:
            self.classes_ = compiled.classes

    def predict(self, X):
        """The model's ``predict``."""
        rows = self._transformed(X)
        found = self.compiled.predict(_dense(rows))
        return self.model.predict(rows) if found is None else found

    def predict_proba(self, X):
        """The model's ``predict_proba`` (classifiers only)."""
        rows = self._transformed(X)
        found = self.compiled.predict_proba(_dense(rows))
        return self.model.predict_proba(rows) if found is None else found

    def _transformed(self, X):
        for step in self.transforms:
            X = step.transform(X)
        return X


def predictor_for(estimator):
    """The object to call ``predict`` on for ``estimator``: its compiled form when there is one, else itself."""
    transforms, model = [], estimator
    if isinstance(estimator, Pipeline):
        transforms = [step for _, step in estimator.steps[:-1] if not _skipped(step)]
        model = estimator.steps[-1][1]
    compiled = compile_trees(model)
    return estimator if compiled is None else CompiledPredictor(transforms, model, compiled)


def _skipped(step) -> bool:
    return isinstance(step, str) or step is None


def _dense(rows) -> np.ndarray:
    # A sparse row's absent entries are zeros to scikit-learn's tree walker too.
    return rows.toarray() if scipy.sparse.issparse(rows) else rows
