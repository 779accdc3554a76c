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

A row holding NaN goes where scikit-learn sends it (its node's ``missing_go_to_left``), so the
compiled form needs nothing of the estimator it came from: it is plain arrays, which
``registry.serving.served_forms`` writes once per machine for every worker to map.
"""
from __future__ import annotations

import threading

import numpy as np
# Up to this many rows NumPy walks all trees at once; on more, its passes over the working arrays
# cost more than scikit-learn's compiled walker called once per tree.
_WALK_ROWS = 64
# Below this many (tree, row) pairs, walking finished pairs on costs less than leaving them behind.
_SMALL_WALK = 1024
_TREE_LEAF, _TREE_UNDEFINED = -1, -2  # scikit-learn's marks for a leaf's children and its feature
_BUILT = frozenset({"_walkers", "_building", "_flat_value", "_outputs"})  # made from the state, not part of it


class CompiledTrees:
    """One or more trees as flat arrays over all their nodes.

    The walk carries node ids doubled (``2 * id``), so that the next node is one lookup,
    ``child[2 * id + went_left]``; the per-node arrays it reads are stored twice over to match.
    Everything it holds is an array or a plain value, so that it can be stored and mapped as it is;
    scikit-learn's own walker, faster on large batches, is rebuilt from these arrays when one comes.
    """

    def __init__(self, *, feature: np.ndarray, threshold: np.ndarray, inner: np.ndarray, nan_left: np.ndarray,
                 child: np.ndarray, roots: np.ndarray, offsets: np.ndarray, value: np.ndarray, depth: int,
                 n_features: int, averaged: bool, classes: np.ndarray | None):
        self.feature = feature  # by doubled node id: the column the node tests (0 at leaves)
        self.threshold = threshold  # by doubled node id, float32: go left when x <= threshold (+inf at leaves)
        self.inner = inner  # by doubled node id: True where the node splits, False at leaves
        self.nan_left = nan_left  # by doubled node id: a NaN goes left here (scikit-learn's missing_go_to_left)
        self.child = child  # [2n] doubled id of the right child, [2n + 1] of the left one; a leaf points at itself
        self.roots = roots  # doubled id of every tree's root, in tree order
        self.offsets = offsets  # id of every tree's first node, in tree order
        self.value = value  # by node id: the leaf's output row (float64, one column per class, or one)
        self.depth = depth  # levels to walk so that every row reaches a leaf
        self.n_features = n_features
        self.averaged = averaged  # a forest: outputs summed from zeros in tree order, then divided by their count
        self.classes = classes  # a classifier's classes_, else None
        self._walkers: tuple | None = None  # scikit-learn Tree objects, built on the first large batch
        self._building = threading.Lock()
        self._flat_value = value.reshape(-1)  # see _leaf_values
        self._outputs = np.arange(value.shape[1])

    def __getstate__(self) -> dict:
        """The arrays and values that make it; not the walkers built from them."""
        return {name: value for name, value in vars(self).items() if name not in _BUILT}

    def __setstate__(self, state: dict) -> None:
        self.__init__(**state)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """scikit-learn's ``predict`` for these float rows."""
        output = self._output(X)
        if self.classes is None:
            return output[:, 0]
        return self.classes[best_of_rows(output)]

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """scikit-learn's ``predict_proba`` for these float rows."""
        return self._output(X)

    @property
    def private_bytes(self) -> int:
        """What the walkers built for large batches hold (0 until one came)."""
        walkers = self._walkers or ()
        if not walkers:
            return 0
        from sklearn.tree._tree import NODE_DTYPE  # loaded already: it built the walkers

        return sum(w.capacity * (NODE_DTYPE.itemsize + np.dtype(np.float64).itemsize) for w in walkers)

    def _output(self, X: np.ndarray) -> np.ndarray:
        rows = np.asarray(X, dtype=np.float32)
        if rows.ndim != 2 or rows.shape[1] != self.n_features:
            raise ValueError(f"X has {rows.shape[-1]} features, but the model is expecting {self.n_features} features")
        if len(rows) <= _WALK_ROWS:
            missing = bool(np.isnan(rows).any())
            if len(rows) == 1 and not missing:
                return self._combine(self._one_row_leaves(rows[0]))
            return self._combine(self._leaves(rows, missing=missing))
        return self._applied(rows)

    def _applied(self, rows: np.ndarray) -> np.ndarray:
        """The output from scikit-learn's compiled walker, tree by tree: the faster one on large batches."""
        rows = np.ascontiguousarray(rows)
        walkers = self._walkers or self._build_walkers()
        if not self.averaged:
            return self.value.take(walkers[0].apply(rows), axis=0)
        total = np.zeros((len(rows), self.value.shape[1]))
        for walker, offset in zip(walkers, self.offsets):
            total += self.value.take(walker.apply(rows) + offset, axis=0)
        total /= len(walkers)
        return total

    def _build_walkers(self) -> tuple:
        """scikit-learn's Tree objects for these nodes: only what ``apply`` reads (no impurities, no values)."""
        with self._building:
            if self._walkers is None:
                ends = [*self.offsets[1:], len(self.value)]
                self._walkers = tuple(self._walker(int(start), int(end)) for start, end in zip(self.offsets, ends))
        return self._walkers

    def _walker(self, start: int, end: int):
        # scikit-learn is imported here, on the first large batch: a form of plain arrays serves without it.
        from sklearn.tree._tree import NODE_DTYPE, Tree

        ids = np.arange(start, end)
        inner = self.inner[2 * ids]
        nodes = np.zeros(end - start, dtype=NODE_DTYPE)
        nodes["left_child"] = np.where(inner, self.child[2 * ids + 1] // 2 - start, _TREE_LEAF)
        nodes["right_child"] = np.where(inner, self.child[2 * ids] // 2 - start, _TREE_LEAF)
        nodes["feature"] = np.where(inner, self.feature[2 * ids], _TREE_UNDEFINED)
        # x <= the float32 bound holds for a float32 x exactly when x <= the original threshold does.
        nodes["threshold"] = np.where(inner, self.threshold[2 * ids].astype(np.float64), _TREE_UNDEFINED)
        nodes["missing_go_to_left"] = self.nan_left[2 * ids]
        walker = Tree(self.n_features, np.ones(1, dtype=np.intp), 1)
        walker.__setstate__({"max_depth": self.depth, "node_count": end - start, "nodes": nodes,
                             "values": np.zeros((end - start, 1, 1))})
        return walker

    def _one_row_leaves(self, row: np.ndarray) -> np.ndarray:
        """Leaf id that every tree ends in for one row without NaN, shape (trees, 1).

        A level is five array operations with no checks for finished paths (a leaf points at itself).
        From half the depth on, every other level asks whether all paths have ended: one row's
        deepest path is usually well above the forest's deepest leaf (15 of 21 levels in the bench's
        forest), and the question costs less than the levels it saves."""
        feature, threshold, child, inner = self.feature, self.threshold, self.child, self.inner
        node = self.roots
        check_from = self.depth // 2
        for level in range(1, self.depth + 1):
            node = child[node + (row[feature[node]] <= threshold[node])]
            if level >= check_from and not level % 2 and not inner[node].any():
                break
        return (node >> 1)[:, np.newaxis]

    def _leaves(self, rows: np.ndarray, missing: bool) -> np.ndarray:
        """Leaf id that every (tree, row) ends in, shape (trees, rows): all trees walked at once.

        ``missing``: some rows hold NaN, which goes where ``nan_left`` says (a comparison with NaN is false).
        """
        n_rows, n_trees = len(rows), len(self.roots)
        flat = np.ascontiguousarray(rows).ravel()
        row_start = np.tile(np.arange(0, n_rows * self.n_features, self.n_features), n_trees)
        node = np.repeat(self.roots, n_rows)
        found, where = np.empty_like(node), np.arange(len(node))
        for level in range(1, self.depth + 1):
            # One level for every (tree, row) pair. Indexing, not ndarray.take: take lets go of the GIL
            # on every call, and in a worker whose other threads want it that costs ~50 µs each time.
            column = self.feature[node]
            column += row_start
            x = flat[column]
            left = x <= self.threshold[node]
            if missing:
                left |= np.isnan(x) & self.nan_left[node]
            node = self.child[node + left]
            if level % 2:
                continue
            # Most paths end well above the deepest leaf: once half have, walk on with the others only.
            left = self.inner[node]
            live = np.count_nonzero(left)
            if live and (live > len(node) // 2 or len(node) <= _SMALL_WALK):
                continue
            done = ~left
            found[where[done]] = node[done]
            if not live:
                break
            node, row_start, where = node[left], row_start[left], where[left]
        else:
            found[where] = node
        return (found >> 1).reshape(n_trees, n_rows)

    def _leaf_values(self, leaves: np.ndarray) -> np.ndarray:
        """The ``value`` rows of ``leaves`` (any shape), gathered from the flat array: indexing the
        two-dimensional one by rows lets go of the GIL, which costs a worker whose other threads want
        it more than the gather itself (a single-row forest: 41 µs of CPU instead of 32 with two
        threads predicting)."""
        return self._flat_value[(leaves * len(self._outputs))[..., np.newaxis] + self._outputs]

    def _combine(self, leaves: np.ndarray) -> np.ndarray:
        """The trees' leaf rows turned into the model's output, as scikit-learn adds them."""
        n_trees, n_rows = leaves.shape
        if not self.averaged:
            return self._leaf_values(leaves[0])
        # Sequential sums in tree order from zeros, as scikit-learn's `out += tree output`; np.sum
        # would add pairwise and round differently, and without the zeros -0.0 would stay -0.0.
        running = np.empty((n_trees + 1, n_rows, self.value.shape[1]))
        running[0] = 0.0
        running[1:] = self._leaf_values(leaves)
        np.add.accumulate(running, axis=0, out=running)
        total = running[-1]
        total /= n_trees
        return total


def best_of_rows(scores: np.ndarray) -> np.ndarray | slice:
    """``np.argmax(scores, axis=1)``, as an index into the classes: for a single row, without NumPy's
    argmax, which lets go of the GIL on every call (see ``CompiledTrees._leaf_values``: a single-row
    forest costs 45 µs of CPU instead of 33 with two threads predicting)."""
    if len(scores) != 1:
        return np.argmax(scores, axis=1)
    row = scores[0].tolist()
    best = max(range(len(row)), key=row.__getitem__)  # the first of equal maxima, as argmax
    return slice(best, best + 1)


def compile_trees(model) -> CompiledTrees | None:
    """The flat form of a fitted single-output tree or random forest; None for anything else."""
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


def _flatten(trees: list, averaged: bool, classes: np.ndarray | None, n_features: int) -> CompiledTrees:
    sizes = np.array([tree.node_count for tree in trees])
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    feature, threshold, inner, nan_left, left, right, value = [], [], [], [], [], [], []
    for tree, offset in zip(trees, offsets):
        ids = np.arange(tree.node_count)
        leaf = tree.children_left == -1
        inner.append(~leaf)
        nan_left.append(tree.missing_go_to_left.astype(bool))
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
        nan_left=np.repeat(np.concatenate(nan_left), 2),
        child=child,
        roots=(2 * offsets).astype(np.intp),
        offsets=offsets.astype(np.intp),
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
