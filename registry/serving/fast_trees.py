"""Exact, fast inference for decision trees and random forests: every tree as flat arrays, walked at once.

A supported model is compiled once per load. Prediction then walks all trees level by level with
vectorised NumPy (on batches of more than ``_WALK_ROWS`` rows it calls scikit-learn's compiled
``Tree.apply`` once per tree instead, which is faster there), and gives bit for bit what scikit-learn
gives with ``n_jobs=1``:

- rows are cast to float32 (as ``validate_data(dtype=np.float32)`` does), and a row goes left where
  ``x <= threshold``, the float32 value compared with the float64 threshold as C compares them;
- a regression forest adds its trees' outputs to zeros in tree order, then divides by their count;
- a classification forest does the same with each tree's ``value`` rows (already the class fractions
  in scikit-learn 1.9), and predicts ``classes_.take(argmax(proba))``;
- a single tree answers its leaf's ``value`` row as it is.

Rows holding NaN after the cast go through scikit-learn (its missing-value routing is not copied).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

_TREES = (DecisionTreeClassifier, DecisionTreeRegressor)
_FORESTS = (RandomForestClassifier, RandomForestRegressor)
# Up to this many rows NumPy walks all trees at once; on more, its passes over the working arrays
# cost more than scikit-learn's compiled walker called once per tree.
_WALK_ROWS = 64
# Below this many (tree, row) pairs, walking finished pairs on costs less than leaving them behind.
_SMALL_WALK = 1024


@dataclass(frozen=True, eq=False)
class CompiledTrees:
    """One or more trees as flat arrays over all their nodes.

    The walk carries node ids doubled (``2 * id``), so that the next node is one lookup,
    ``child[2 * id + went_left]``; the per-node arrays it reads are stored twice over to match.
    """

    feature: np.ndarray  # by doubled node id: the column the node tests (0 at leaves)
    threshold: np.ndarray  # by doubled node id, float32: go left when x <= threshold (+inf at leaves)
    inner: np.ndarray  # by doubled node id: True where the node splits, False at leaves
    child: np.ndarray  # [2n] doubled id of the right child, [2n + 1] of the left one; a leaf points at itself
    roots: np.ndarray  # doubled id of every tree's root, in tree order
    offsets: np.ndarray  # id of every tree's first node, in tree order
    trees: tuple  # the fitted sklearn.tree._tree.Tree objects, for their compiled apply on large batches
    value: np.ndarray  # by node id: the leaf's output row (float64, one column per class, or one)
    depth: int  # levels to walk so that every row reaches a leaf
    n_features: int
    averaged: bool  # a forest: outputs summed from zeros in tree order, then divided by their count
    classes: np.ndarray | None  # a classifier's classes_, else None

    def predict(self, X: np.ndarray) -> np.ndarray | None:
        """scikit-learn's ``predict`` for float rows, or None when rows hold NaN (left to scikit-learn)."""
        output = self._output(X)
        if output is None:
            return None
        if self.classes is None:
            return output[:, 0]
        return self.classes.take(np.argmax(output, axis=1), axis=0)

    def predict_proba(self, X: np.ndarray) -> np.ndarray | None:
        """scikit-learn's ``predict_proba`` for float rows, or None when rows hold NaN."""
        return self._output(X)

    def _output(self, X: np.ndarray) -> np.ndarray | None:
        rows = np.asarray(X, dtype=np.float32)
        if rows.ndim != 2 or rows.shape[1] != self.n_features:
            raise ValueError(f"X has {rows.shape[-1]} features, but the model is expecting {self.n_features} features")
        if np.isnan(rows).any():
            return None
        return self._combine(self._leaves(rows)) if len(rows) <= _WALK_ROWS else self._applied(rows)

    def _applied(self, rows: np.ndarray) -> np.ndarray:
        """The output from scikit-learn's compiled walker, tree by tree: the faster one on large batches."""
        rows = np.ascontiguousarray(rows)
        if not self.averaged:
            return self.value.take(self.trees[0].apply(rows), axis=0)
        total = np.zeros((len(rows), self.value.shape[1]))
        for tree, offset in zip(self.trees, self.offsets):
            total += self.value.take(tree.apply(rows) + offset, axis=0)
        total /= len(self.trees)
        return total

    def _leaves(self, rows: np.ndarray) -> np.ndarray:
        """Leaf id that every (tree, row) ends in, shape (trees, rows): all trees walked at once."""
        n_rows, n_trees = len(rows), len(self.roots)
        flat = np.ascontiguousarray(rows).ravel()
        row_start = np.tile(np.arange(0, n_rows * self.n_features, self.n_features), n_trees)
        node = np.repeat(self.roots, n_rows)
        found, where = np.empty_like(node), np.arange(len(node))
        column, x, bound = np.empty_like(node), np.empty(len(node), np.float32), np.empty(len(node), np.float32)
        left = np.empty(len(node), dtype=bool)
        for level in range(1, self.depth + 1):
            # One level for every (tree, row) pair. mode="clip" skips bounds checks and buffering:
            # every index is valid by construction.
            self.feature.take(node, out=column, mode="clip")
            column += row_start
            flat.take(column, out=x, mode="clip")
            self.threshold.take(node, out=bound, mode="clip")
            np.less_equal(x, bound, out=left)
            node += left
            self.child.take(node, out=node, mode="clip")
            if level % 2:
                continue
            # Most paths end well above the deepest leaf: once half have, walk on with the others only.
            self.inner.take(node, out=left, mode="clip")
            live = np.count_nonzero(left)
            if live and (live > len(node) // 2 or len(node) <= _SMALL_WALK):
                continue
            done = ~left
            found[where[done]] = node[done]
            if not live:
                break
            node, row_start, where = node[left], row_start[left], where[left]
            column, x, bound, left = column[:live], x[:live], bound[:live], left[:live]
        else:
            found[where] = node
        return (found >> 1).reshape(n_trees, n_rows)

    def _combine(self, leaves: np.ndarray) -> np.ndarray:
        """The trees' leaf rows turned into the model's output, as scikit-learn adds them."""
        n_trees, n_rows = leaves.shape
        if not self.averaged:
            return self.value.take(leaves[0], axis=0)
        # Sequential sums in tree order from zeros, as scikit-learn's `out += tree output`; np.sum
        # would add pairwise and round differently, and without the zeros -0.0 would stay -0.0.
        running = np.empty((n_trees + 1, n_rows, self.value.shape[1]))
        running[0] = 0.0
        self.value.take(leaves, axis=0, out=running[1:], mode="clip")
        np.add.accumulate(running, axis=0, out=running)
        total = running[-1]
        total /= n_trees
        return total


def compile_trees(model) -> CompiledTrees | None:
    """The flat form of a fitted single-output tree or random forest; None for anything else."""
    if type(model) in _FORESTS:
        trees, averaged = list(model.estimators_), True
    elif type(model) in _TREES:
        trees, averaged = [model], False
    else:
        return None
    if getattr(model, "n_outputs_", None) != 1 or not trees:
        return None
    classes = model.classes_ if hasattr(model, "classes_") else None
    if classes is not None and not isinstance(classes, np.ndarray):
        return None
    return _flatten([tree.tree_ for tree in trees], averaged, classes, int(model.n_features_in_))


def _flatten(trees: list, averaged: bool, classes: np.ndarray | None, n_features: int) -> CompiledTrees:
    sizes = np.array([tree.node_count for tree in trees])
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    feature, threshold, inner, left, right, value = [], [], [], [], [], []
    for tree, offset in zip(trees, offsets):
        ids = np.arange(tree.node_count)
        leaf = tree.children_left == -1
        inner.append(~leaf)
        feature.append(np.where(leaf, 0, tree.feature))
        threshold.append(np.where(leaf, np.inf, tree.threshold))
        left.append(np.where(leaf, ids, tree.children_left) + offset)
        right.append(np.where(leaf, ids, tree.children_right) + offset)
        value.append(tree.value[:, 0, :1 if classes is None else len(classes)])
    values = np.concatenate(value).astype(np.float64, copy=False)
    child = np.empty(2 * int(sizes.sum()), dtype=np.intp)
    child[0::2] = 2 * np.concatenate(right)
    child[1::2] = 2 * np.concatenate(left)
    return CompiledTrees(
        feature=np.repeat(np.concatenate(feature).astype(np.intp), 2),
        threshold=np.repeat(_float32_below(np.concatenate(threshold)), 2),
        inner=np.repeat(np.concatenate(inner), 2),
        child=child,
        roots=(2 * offsets).astype(np.intp),
        offsets=offsets.astype(np.intp),
        trees=tuple(trees),
        value=np.ascontiguousarray(values),
        depth=max(int(tree.max_depth) for tree in trees),
        n_features=n_features,
        averaged=averaged,
        classes=classes,
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
