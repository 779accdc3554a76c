"""What answers ``predict`` for a loaded model: a compiled form where one applies, the estimator otherwise.

``predictor_for`` runs once per load. A tree or random forest, bare or as a Pipeline's last step, is
compiled to flat arrays (``registry.serving.fast_trees``); a linear or logistic model predicts with its own
arithmetic (``X @ coef_.T + intercept_``) without scikit-learn's per-call checks, which cost it ten
times the arithmetic on one row. The steps before the model still run through scikit-learn's
``transform``, as ``Pipeline.predict`` runs them. Both give exactly scikit-learn's answers; anything
else (and a linear model's ``predict_proba``) is served by scikit-learn.

Both compiled kinds hold only fitted scikit-learn steps, arrays and plain values, so that
``registry.serving.served_forms`` can store them once per machine as arrays for every worker to map.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse
from sklearn.linear_model import ElasticNet, Lasso, LinearRegression, LogisticRegression, Ridge
from sklearn.pipeline import Pipeline

from registry.serving.fast_trees import CompiledTrees, compile_trees

_LINEAR = (LinearRegression, Ridge, Lasso, ElasticNet, LogisticRegression)


class _Compiled:
    """A model behind its Pipeline's steps (none when bare), answering ``predict`` and ``predict_proba``."""

    def __init__(self, transforms: list):
        self.transforms = transforms

    def _transformed(self, X):
        for step in self.transforms:
            X = step.transform(X)
        return X

    def runs_scikit_learn(self, proba: bool) -> bool:
        """Whether ``predict`` (``predict_proba`` with ``proba``) calls into scikit-learn: its steps do."""
        return bool(self.transforms)


class TreePredictor(_Compiled):
    """A tree or random forest predicting through its compiled form."""

    def __init__(self, transforms: list, compiled: CompiledTrees):
        super().__init__(transforms)
        self.compiled = compiled

    def predict(self, X):
        """The model's ``predict``."""
        return self.compiled.predict(_dense(self._transformed(X)))

    def predict_proba(self, X):
        """The model's ``predict_proba`` (classifiers only)."""
        return self.compiled.predict_proba(_dense(self._transformed(X)))

    @property
    def grown_bytes(self) -> int:
        """What was built after loading: scikit-learn's walkers, once a large batch came."""
        return self.compiled.private_bytes


class LinearPredictor(_Compiled):
    """A linear or logistic model's ``predict`` as scikit-learn computes it, without its per-call checks."""

    def __init__(self, transforms: list, model):
        super().__init__(transforms)
        self.model = model
        # The same view of coef_ scikit-learn multiplies by, so the same BLAS call and the same bits.
        self.weights = model.coef_ if model.coef_.ndim == 1 else model.coef_.T
        self.classes = model.classes_ if isinstance(model, LogisticRegression) else None

    def predict(self, X):
        """The model's ``predict``."""
        rows = self._transformed(X)
        if not (isinstance(rows, np.ndarray) and rows.dtype == np.float64 and rows.ndim == 2):
            return self.model.predict(rows)
        scores = rows @ self.weights + self.model.intercept_
        if self.classes is None:
            return scores
        # Indexing, not take: take lets go of the GIL, which other threads of the worker then hold.
        if scores.shape[1] == 1:
            return self.classes[(scores.reshape(-1) > 0).astype(np.intp)]
        return self.classes[np.argmax(scores, axis=1)]

    def predict_proba(self, X):
        """The model's ``predict_proba``, from scikit-learn."""
        return self.model.predict_proba(self._transformed(X))

    def runs_scikit_learn(self, proba: bool) -> bool:
        """Whether ``predict`` (``predict_proba`` with ``proba``) calls into scikit-learn: probabilities do."""
        return proba or super().runs_scikit_learn(proba)

    def __getstate__(self) -> dict:
        """The steps and the model; the views of its arrays are taken again on the way back."""
        return {"transforms": self.transforms, "model": self.model}

    def __setstate__(self, state: dict) -> None:
        self.__init__(**state)


def predictor_for(estimator):
    """The object to call ``predict`` on for ``estimator``: its compiled form when there is one, else itself."""
    transforms, model = [], estimator
    if isinstance(estimator, Pipeline):
        transforms = [step for _, step in estimator.steps[:-1] if not _skipped(step)]
        model = estimator.steps[-1][1]
    if type(model) in _LINEAR and isinstance(getattr(model, "coef_", None), np.ndarray):
        return LinearPredictor(transforms, model)
    compiled = compile_trees(model)
    return estimator if compiled is None else TreePredictor(transforms, compiled)


def _skipped(step) -> bool:
    return isinstance(step, str) or step is None


def _dense(rows) -> np.ndarray:
    # A sparse row's absent entries are zeros to scikit-learn's tree walker too.
    return rows.toarray() if scipy.sparse.issparse(rows) else rows
