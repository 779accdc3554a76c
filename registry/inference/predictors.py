"""What answers ``predict`` for a loaded model: a compiled form where one applies, the estimator otherwise.

``predictor_for`` runs once per load. A tree or random forest, bare or as a Pipeline's last step, is
compiled to node records that a C walker answers from (``registry.inference.fast_trees``), and so is a
boosted model (``registry.inference.fast_boosting``, wide records summed from its baseline); a linear or
logistic model predicts with its own arithmetic (``X @ coef_.T + intercept_``) without scikit-learn's
per-call checks, which cost it ten times the arithmetic on one row. The steps before the model still run through scikit-learn's
``transform``, as ``Pipeline.predict`` runs them. Both give exactly scikit-learn's answers; anything
else (and a linear model's ``predict_proba``) is served by scikit-learn.

Both compiled kinds hold only fitted scikit-learn steps, arrays and plain values, so that
``registry.artifacts.served_forms`` can store them once per machine as arrays for every worker to map.
A bare compiled model holds no scikit-learn object at all: a worker serving it from its form never
imports scikit-learn (nor pandas and most of SciPy, which scikit-learn imports), a second of start-up;
a two-class logistic regression imports SciPy's special functions alone, for its probabilities.
"""
from __future__ import annotations

import numpy as np

from registry.inference.fast_boosting import CompiledBoosting, compile_boosting
from registry.inference.fast_trees import CompiledTrees, best_of_rows, compile_trees


class _Compiled:
    """A model behind its Pipeline's steps (none when bare), answering ``predict`` and ``predict_proba``."""

    def __init__(self, transforms: list):
        self.transforms = transforms

    def transformed(self, X):
        """The rows as the model takes them: through the Pipeline's steps (none when bare)."""
        for step in self.transforms:
            X = step.transform(X)
        return X

    def runs_scikit_learn(self, proba: bool) -> bool:
        """Whether ``predict`` (``predict_proba`` with ``proba``) calls into scikit-learn: its steps do."""
        return bool(self.transforms)


class TreePredictor(_Compiled):
    """A tree, random forest or boosted model predicting through its compiled form."""

    def __init__(self, transforms: list, compiled: CompiledTrees | CompiledBoosting):
        if not isinstance(transforms, list) or not isinstance(compiled, (CompiledTrees, CompiledBoosting)):
            raise TypeError("a TreePredictor is a list of steps and a compiled tree or boosted model")
        super().__init__(transforms)
        self.compiled = compiled

    def __setstate__(self, state: dict) -> None:
        """Made again from its steps and compiled form (a served form's state): a part missing is a TypeError."""
        self.__init__(**state)

    def predict(self, X):
        """The model's ``predict``."""
        return self.compiled.predict(dense(self.transformed(X)))

    def predict_proba(self, X):
        """The model's ``predict_proba`` (classifiers only)."""
        return self.compiled.predict_proba(dense(self.transformed(X)))

    def predict_and_proba(self, X):
        """``predict`` and ``predict_proba`` (classifiers only), the rows transformed once and, for trees,
        walked once: a batch's probabilities cost no second walk."""
        rows = dense(self.transformed(X))
        both = getattr(self.compiled, "predict_and_proba", None)
        if both is not None:
            return both(rows)
        return self.compiled.predict(rows), self.compiled.predict_proba(rows)


class LinearPredictor(_Compiled):
    """A linear model's ``predict``, and a logistic regression's ``predict_proba``, computed as
    scikit-learn computes them, without its per-call checks.

    Behind a Pipeline's steps the model is kept too: rows the steps turn into anything but a float64
    array (sparse, say) go to it. A bare model is only its arrays.
    """

    def __init__(self, transforms: list, coef: np.ndarray, intercept, classes: np.ndarray | None, model=None):
        super().__init__(transforms)
        self.coef, self.intercept, self.classes, self.model = coef, intercept, classes, model
        # The same view of coef_ scikit-learn multiplies by, so the same BLAS call and the same bits.
        self.weights = coef if coef.ndim == 1 else coef.T
        self._expit = None
        if classes is not None and len(classes) <= 2:
            # Two classes' probabilities come from SciPy's expit, as scikit-learn's do: imported with the
            # model (0.17 s, once a process), not by the first request that asks for probabilities.
            from scipy.special import expit

            self._expit = expit

    def predict(self, X):
        """The model's ``predict``."""
        scores = self._scores(X)
        if scores is None:
            return self.model.predict(self.transformed(X))
        if self.classes is None:
            return scores
        return self._labels(scores)

    def predict_proba(self, X):
        """A logistic regression's ``predict_proba``: the logistic function of the score for two
        classes, scikit-learn's softmax of the scores for more."""
        if self.classes is None:
            raise AttributeError("a regressor has no predict_proba")
        scores = self._scores(X)
        if scores is None:
            return self.model.predict_proba(self.transformed(X))
        return self._probabilities(scores)

    def predict_and_proba(self, X):
        """``predict`` and ``predict_proba`` (logistic regressions only) from one product of the rows
        by the weights: the same arrays as the two calls."""
        if self.classes is None:
            raise AttributeError("a regressor has no predict_proba")
        scores = self._scores(X)
        if scores is None:
            rows = self.transformed(X)
            return self.model.predict(rows), self.model.predict_proba(rows)
        return self._labels(scores), self._probabilities(scores)

    def _labels(self, scores: np.ndarray) -> np.ndarray:
        # Indexing, not take: take lets go of the GIL, which other threads of the worker then hold.
        if scores.ndim == 1 or scores.shape[1] == 1:
            return self.classes[(scores.reshape(-1) > 0).astype(np.intp)]
        return self.classes[best_of_rows(scores)]

    def _probabilities(self, scores: np.ndarray) -> np.ndarray:
        """The probabilities of these scores, computed in their place (the labels are taken first)."""
        if len(self.classes) <= 2:
            prob = scores.reshape(-1)
            self._expit(prob, out=prob)
            return np.stack([1 - prob, prob], axis=1)
        scores -= scores.max(axis=1).reshape(-1, 1)
        np.exp(scores, out=scores)
        scores /= scores.sum(axis=1).reshape(-1, 1)
        return scores

    def _scores(self, X) -> np.ndarray | None:
        """The decision scores; None when the steps gave rows that the kept model must take."""
        rows = self.transformed(X)
        if not (isinstance(rows, np.ndarray) and rows.ndim == 2 and rows.dtype.kind == "f"):
            if self.model is not None:
                return None
            rows = np.asarray(rows, dtype=np.float64)  # as scikit-learn's checks convert integers
        return rows @ self.weights + self.intercept

    def __getstate__(self) -> dict:
        """The steps, the arrays, and the model when kept; the views of the arrays are taken again on the way back."""
        return {"transforms": self.transforms, "coef": self.coef, "intercept": self.intercept,
                "classes": self.classes, "model": self.model}

    def __setstate__(self, state: dict) -> None:
        self.__init__(**state)


def predictor_for(estimator):
    """The object to call ``predict`` on for ``estimator``: its compiled form when there is one, else itself."""
    # Loaded already (the estimator was just unpickled); imported here so that serving a form never does.
    from sklearn.linear_model import ElasticNet, Lasso, LinearRegression, LogisticRegression, Ridge
    from sklearn.pipeline import Pipeline

    transforms, model = [], estimator
    if isinstance(estimator, Pipeline):
        transforms = [step for _, step in estimator.steps[:-1] if not _skipped(step)]
        model = estimator.steps[-1][1]
    linear = (LinearRegression, Ridge, Lasso, ElasticNet, LogisticRegression)
    if type(model) in linear:  # always served compiled: its file must hold the arrays the compiled form reads
        if not isinstance(getattr(model, "coef_", None), np.ndarray):
            raise AttributeError(f"{type(model).__name__} has no coef_ array")
        classes = model.classes_ if type(model) is LogisticRegression else None
        return LinearPredictor(transforms, model.coef_, model.intercept_, classes, model if transforms else None)
    compiled = compile_trees(model)
    if compiled is None:
        compiled = compile_boosting(model)
    return estimator if compiled is None else TreePredictor(transforms, compiled)


def _skipped(step) -> bool:
    return isinstance(step, str) or step is None


def dense(rows) -> np.ndarray:
    """Rows as a dense array: a sparse matrix a step gave made dense (its absent entries zeros)."""
    if isinstance(rows, np.ndarray):
        return rows
    import scipy.sparse  # only a Pipeline's steps give anything else, and they loaded SciPy

    # A sparse row's absent entries are zeros to scikit-learn's tree walker too.
    return rows.toarray() if scipy.sparse.issparse(rows) else rows
