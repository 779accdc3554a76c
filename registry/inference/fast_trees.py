"""Exact, fast inference for decision trees and random forests: every tree as node records, walked in C.

A supported model is compiled once per load to one array of 16-byte node records over all its trees
(``registry.inference.tree_walk.NODE``) and the leaves' output rows; the compiled walker
(``native/tree_walk.c``) answers any number of rows from them, and gives bit for bit what scikit-learn
gives with ``n_jobs=1``:

- rows are cast to float32 (as ``validate_data(dtype=np.float32)`` does), and a row goes left where
  ``x <= threshold``, the float32 value compared with the float64 threshold as C compares them;
- a regression forest adds its trees' outputs to zeros in tree order, then divides by their count;
- a classification forest does the same with each tree's ``value`` rows (already the class fractions
  in scikit-learn 1.9), and predicts ``classes_.take(argmax(proba))``;
- a single tree answers its leaf's ``value`` row as it is.

A row holding NaN goes where scikit-learn sends it (its node's ``missing_go_to_left``), so the
compiled form needs nothing of the estimator it came from: it is plain arrays, which
``registry.artifacts.served_forms`` writes once per machine for every worker to map.
"""
from __future__ import annotations

import numpy as np

from registry.inference.compiled_form import CompiledForm
from registry.inference.tree_walk import MAX_NODES, NAN_LEFT, NODE, InvalidNodes, Walker


class CompiledTrees(CompiledForm):
    """One or more trees as node records over all their nodes, and each node's output row.

    Everything it holds is an array or a plain value, so that it can be stored and mapped as it is.
    """

    _BUILT = frozenset({"_walker", "_explainer"})  # made from the state, not part of it

    def __init__(self, *, nodes: np.ndarray, roots: np.ndarray, value: np.ndarray, n_features: int,
                 averaged: bool, classes: np.ndarray | None, cover: np.ndarray | None = None):
        self.nodes = nodes  # tree_walk.NODE records of every tree, tree after tree
        self.roots = roots  # int32: every tree's root, in tree order
        self.value = value  # by node: the leaf's output row (float64, one column per class, or one)
        self.n_features = n_features
        self.averaged = averaged  # a forest: outputs summed from zeros in tree order, then divided by their count
        self.classes = classes  # a classifier's classes_, else None
        self.cover = cover  # by node: the weight of training data it saw (tree_.weighted_n_node_samples), for TreeSHAP
        self._walker = Walker(nodes, roots, value, n_features=n_features, averaged=averaged)
        if classes is not None and not (isinstance(classes, np.ndarray) and classes.ndim == 1
                                        and len(classes) >= value.shape[1]):
            raise InvalidNodes(f"classes that cannot name each of the trees' {value.shape[1]} outputs")

    def predict(self, X: np.ndarray) -> np.ndarray:
        """scikit-learn's ``predict`` for these float rows."""
        return self._predictions(self._output(X))

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """scikit-learn's ``predict_proba`` for these float rows."""
        return self._output(X)

    def predict_and_proba(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``predict`` and ``predict_proba`` from one walk of the trees: the arrays the two calls give."""
        output = self._output(X)
        return self._predictions(output), output

    def _predictions(self, output: np.ndarray) -> np.ndarray:
        if self.classes is None:
            return output[:, 0]
        return self.classes[best_of_rows(output)]

    def _explained(self) -> dict:
        return dict(nodes=self.nodes, roots=self.roots, value=self.value, cover=self.cover, n_features=self.n_features,
                    n_outputs=self.value.shape[1], averaged=self.averaged)

    def explain(self, X: np.ndarray, *, deadline: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Path-dependent TreeSHAP of ``predict_proba`` (classifiers) or ``predict`` (regressors) for these
        rows: ``(base_value, values)`` shaped (outputs,) and (rows, features, outputs), adding up to the
        output. Raises ``NotExplainable`` naming why when it cannot, ``ExplanationTimedOut`` once ``deadline``
        (``time.monotonic()`` seconds) passed."""
        return self.explainer().explain(self._rows(X), deadline=deadline)

    def _output(self, X: np.ndarray) -> np.ndarray:
        return self._walker.output(self._rows(X))

    def _rows(self, X: np.ndarray) -> np.ndarray:
        rows = np.ascontiguousarray(X, dtype=np.float32)
        if rows.ndim != 2 or rows.shape[1] != self.n_features:
            raise ValueError(f"X has {rows.shape[-1]} features, but the model is expecting {self.n_features} features")
        return rows


def best_of_rows(scores: np.ndarray) -> np.ndarray | slice:
    """``np.argmax(scores, axis=1)``, as an index into the classes: for a single row, without NumPy's
    argmax, which lets go of the GIL on every call (a single-row forest cost 45 µs of CPU instead of 33
    with two threads predicting when it did)."""
    if len(scores) != 1:
        return np.argmax(scores, axis=1)
    row = scores[0].tolist()
    best = max(range(len(row)), key=row.__getitem__)  # the first of equal maxima, as argmax
    return slice(best, best + 1)


def compile_trees(model) -> CompiledTrees | None:
    """The compiled form of a fitted single-output tree or random forest; None for anything else, and for
    a forest of more nodes than the walker's int32 node ids reach."""
    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
    from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

    if type(model) in (RandomForestClassifier, RandomForestRegressor):
        trees, averaged = list(model.estimators_), True
    elif type(model) in (DecisionTreeClassifier, DecisionTreeRegressor):
        trees, averaged = [model], False
    else:
        return None
    if getattr(model, "n_outputs_", None) != 1 or not trees:
        return None
    classes = model.classes_ if hasattr(model, "classes_") else None
    if classes is not None and not isinstance(classes, np.ndarray):
        return None
    return _flatten([tree.tree_ for tree in trees], averaged, classes, int(model.n_features_in_))


def _flatten(trees: list, averaged: bool, classes: np.ndarray | None, n_features: int) -> CompiledTrees | None:
    sizes = np.array([tree.node_count for tree in trees])
    if sizes.sum() > MAX_NODES:
        return None
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    nodes = np.zeros(int(sizes.sum()), dtype=NODE)
    value, cover = [], []
    for tree, offset in zip(trees, offsets):
        ids = np.arange(tree.node_count)
        leaf = tree.children_left == -1
        records = nodes[offset:offset + tree.node_count]
        records["threshold"] = _float32_below(np.where(leaf, np.inf, tree.threshold))
        records["feature"] = np.where(leaf, 0, tree.feature).astype(np.uint32)
        records["feature"] |= np.where(tree.missing_go_to_left.astype(bool), NAN_LEFT, 0).astype(np.uint32)
        records["child"][:, 0] = np.where(leaf, ids, tree.children_right) + offset
        records["child"][:, 1] = np.where(leaf, ids, tree.children_left) + offset
        value.append(tree.value[:, 0, :1 if classes is None else len(classes)])
        cover.append(tree.weighted_n_node_samples)
    return CompiledTrees(
        nodes=nodes,
        roots=offsets.astype(np.int32),
        value=np.ascontiguousarray(np.concatenate(value), dtype=np.float64),
        n_features=n_features,
        averaged=averaged,
        classes=classes,
        cover=np.ascontiguousarray(np.concatenate(cover), dtype=np.float64),
    )


def _float32_below(threshold: np.ndarray) -> np.ndarray:
    """The largest float32 at or below each float64 threshold.

    For a float32 ``x``, ``x <= t`` (compared in float64, as scikit-learn's C code does) holds exactly
    when ``x <= _float32_below(t)``, so the walk compares float32 with float32 and gives the same answer.
    """
    with np.errstate(over="ignore"):
        rounded = threshold.astype(np.float32)
    above = rounded.astype(np.float64) > threshold
    rounded[above] = np.nextafter(rounded[above], np.float32(-np.inf))
    return rounded
