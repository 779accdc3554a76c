"""Exact attributions for compiled trees: path-dependent TreeSHAP (``native/tree_shap.c``, by Gauss-Legendre
quadrature: O(nodes × points) a tree and row) over the walker's node records and the covers the model's library
recorded for each node. Trees and forests are explained leaf by leaf from a private copy of their paths made here
once (with no branch on the row: 2.6 times faster on the bench's forest), where the CPU has AVX2; boosted models'
wide records, and any model that gets no copy, by the walk of the records.

A tree's attributions for a row are the Shapley values of ``v(S) = E[f(x) | x_S]``, the expectation
taken over the training data as the tree's covers describe it (a child's share of a node is its cover over
the node's). ``base_value`` is ``v(∅)``, the covers' weighted mean of the leaves, so ``base_value +
Σ values == f(x)`` (to rounding). An ensemble's are its trees', added as the walker adds their outputs: a
forest's averaged, a boosted model's added to its baseline in each tree's output column.

The covers are what ``shap.TreeExplainer(model, feature_perturbation="tree_path_dependent")`` uses for
each kind, so the values are shap's: scikit-learn's ``tree_.weighted_n_node_samples`` (trees, forests,
GradientBoosting), HistGradientBoosting's node ``count``, XGBoost's ``sum_hessian``, and LightGBM's
``internal_count`` and ``leaf_count`` (the counts LightGBM's own ``pred_contrib=True`` weighs by: its
``Tree::TreeSHAP`` takes ``data_count``), so a LightGBM model's values are also LightGBM's own.

What a row costs is known before any row is explained (:attr:`TreeExplainer.row_cost`, in node-points: the walk
does the work of one quadrature point at one node for one output that many times, at most), and a call given a
deadline stops soon after it passes (the C walks read the clock every few hundred nodes): ``ExplanationTimedOut``.
"""
from __future__ import annotations

import ctypes

import numpy as np

from registry.inference.tree_walk import (
    LIGHTGBM_ROWS, RELEASING_GIL, TIMED_OUT, WIDE_NODE, PrivateCopy, functions_for, raise_for,
)

# Deeper trees are not explained: the walk keeps its sums per level (depth × points × outputs, the points up to
# half the depth).
MAX_DEPTH = 4096
# The most bytes of a model's path copy (tree_shap_paths_make): its splits, and each leaf's value and its path's
# columns (24 bytes each): 2.6 MB for the bench's forest of 100 trees of depth 10 over 8 columns (its arrays grow
# by doubling: at most twice that). Larger models, trees deeper than 64 levels and boosted models' wide records are
# explained by the walk of the records.
PATHS_MAX_BYTES = 32 << 20  # as the batch walk's forest copy (tree_walk.FOREST_COPY_MAX_BYTES)
# Whether this CPU gets path copies: their pass takes four points a vector, which only AVX2 makes faster than the
# walk of the records (native/tree_shap.c); elsewhere every model is explained by that walk.
PATHS_SUPPORTED = bool(RELEASING_GIL.paths_supported())


class NotExplainable(ValueError):
    """A compiled model whose attributions cannot be computed; the message says why."""


class ExplanationTimedOut(RuntimeError):
    """An explanation stopped because its deadline passed; nothing of it is kept."""


# The rules of the walk of the records (tree_shap.c's points_for): the fewest of these points that is exact for a
# path of so many distinct columns, else that need rounded up to an even number.
_COMPILED_RULES = (4, 6, 8, 12, 16)


# The node-points that cost a core about what one walk of a tree costs a prediction: an explanation of a cost
# counts as cost / NODE_POINTS_A_WALK walks where a walk's count decides (LOW_PRIORITY_FROM_WALKS). Measured: a
# 100-tree forest of depth 10 walks a row in 5 us (20 a walk of 50 ns) and explains it in 206 to 540 us (600,000
# node-points: about 1 ns each), a 4,000-level chain 70 ms a row (16 million: 4 ns each).
NODE_POINTS_A_WALK = 32


def walks_for(cost: int) -> int:
    """The walks of a prediction that cost about what an explanation of ``cost`` node-points costs."""
    return -(-cost // NODE_POINTS_A_WALK)


def points_for(distinct: int) -> int:
    """The quadrature points the walk takes for paths of up to ``distinct`` columns (tree_shap.c's points_for)."""
    needed = (distinct + 1) // 2
    return next((rule for rule in _COMPILED_RULES if rule >= needed), needed + needed % 2)


class TreeExplainer:
    """Node records, their covers and values, ready to explain rows: checked and measured once, here.

    ``columns[t]`` is the first output tree ``t`` adds its ``value`` row to (None: every tree adds to all of
    them, from 0); ``averaged`` divides the sum by the number of trees; ``baseline`` starts every output;
    ``lightgbm_rows`` reads values within LightGBM's ``kZeroThreshold`` of zero as zero, as the walker does
    for a LightGBM model. Trees and forests (node records) are explained from a private copy of their paths made
    here, within ``paths_max_bytes`` (default PATHS_MAX_BYTES; 0: none, the records walked node by node instead).
    """

    def __init__(self, *, nodes: np.ndarray, roots: np.ndarray, value: np.ndarray, cover: np.ndarray | None,
                 n_features: int, n_outputs: int, columns: np.ndarray | None = None, averaged: bool = False,
                 bitsets: np.ndarray | None = None, baseline: np.ndarray | None = None, lightgbm_rows: bool = False,
                 paths_max_bytes: int | None = None):
        if cover is None:
            raise NotExplainable("the compiled model holds no node covers (its file records none that add up, or it "
                                 "was stored before they were kept)")
        try:
            cover = np.ascontiguousarray(cover, dtype=np.float64)
        except (TypeError, ValueError):  # not numbers at all (a stored form's records in its place)
            cover = np.empty(0)
        if cover.shape != (len(nodes),) or not np.isfinite(cover).all() or (cover < 0).any():
            raise NotExplainable("the node covers are not one finite, non-negative number per node")
        inner = nodes["child"][:, 0] != np.arange(len(nodes))
        if (cover[inner] <= 0).any():
            raise NotExplainable("a split node has no cover: the model holds no weight of data under it")
        value = np.ascontiguousarray(value, dtype=np.float64).reshape(len(nodes), -1)
        self.wide = nodes.dtype == WIDE_NODE
        self.n_features, self.n_outputs, self.averaged = n_features, n_outputs, averaged
        self.n_trees = len(roots)
        bitsets = np.zeros((0, 8), dtype=np.uint32) if bitsets is None else bitsets
        expected = np.empty_like(value)
        depth = np.zeros(len(nodes), dtype=np.int64)
        max_depth = ctypes.c_int64()
        raise_for(RELEASING_GIL.expectations(nodes.ctypes.data, int(self.wide), len(nodes), value.ctypes.data,
                                             value.shape[1], cover.ctypes.data, expected.ctypes.data,
                                             depth.ctypes.data, ctypes.byref(max_depth)))
        children = nodes["child"][inner].ravel()  # inside the nodes, as the expectations' walk found them
        if len(np.unique(children)) != len(children):  # the walk could pass a node twice: it visits each once
            raise NotExplainable("a node is the child of more than one split: the records are not trees")
        if max_depth.value > MAX_DEPTH:
            raise NotExplainable(f"a tree is {max_depth.value} levels deep; at most {MAX_DEPTH} are explained")
        self.max_depth = max_depth.value
        # A row visits each node at most once a tree, doing a point's work for each output it adds to there.
        self.row_cost = len(nodes) * points_for(min(self.max_depth, n_features)) * value.shape[1]
        self.base_value = self._base_value(expected[roots], columns, baseline)
        self._arrays = (nodes, roots, columns, value, cover, bitsets)  # kept alive for the addresses below
        self._model = (nodes.ctypes.data, int(self.wide), len(nodes), roots.ctypes.data,
                       None if columns is None else columns.ctypes.data, len(roots), value.ctypes.data,
                       value.shape[1], cover.ctypes.data, bitsets.ctypes.data, len(bitsets), self.max_depth,
                       LIGHTGBM_ROWS if lightgbm_rows else 0)
        paths_max_bytes = PATHS_MAX_BYTES if paths_max_bytes is None else paths_max_bytes
        self._paths = None if self.wide or paths_max_bytes <= 0 else PrivateCopy.make(
            RELEASING_GIL.paths_make, RELEASING_GIL.paths_free,
            (nodes.ctypes.data, len(nodes), roots.ctypes.data, None if columns is None else columns.ctypes.data,
             len(roots), value.ctypes.data, value.shape[1], cover.ctypes.data, n_features, paths_max_bytes))

    def _base_value(self, root_expectations: np.ndarray, columns, baseline) -> np.ndarray:
        base = np.zeros(self.n_outputs) if baseline is None else np.array(baseline, dtype=np.float64)
        width = root_expectations.shape[1]
        for tree, expectation in enumerate(root_expectations):
            first = 0 if columns is None else int(columns[tree])
            base[first:first + width] += expectation
        return base / self.n_trees if self.averaged else base

    def explain(self, rows: np.ndarray, *, deadline: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(base_value, values)`` for C-contiguous rows (float64 for wide records, float32 otherwise):
        ``base_value`` of shape (outputs,), ``values`` of shape (rows, features, outputs). ``deadline``
        (``time.monotonic()`` seconds) stops the call soon after it passes: ``ExplanationTimedOut``.

        Raises ``NodesDamaged`` when the records changed since they were checked."""
        dtype = np.float64 if self.wide else np.float32
        if rows.dtype != dtype or rows.ndim != 2 or rows.shape[1] != self.n_features or not rows.flags.c_contiguous:
            raise ValueError(f"rows are not a contiguous {np.dtype(dtype)} array of {self.n_features} columns")
        n_rows = len(rows)
        phi = np.zeros((n_rows, self.n_features, self.n_outputs))
        functions = functions_for(walks_for(n_rows * self.row_cost), keeps_gil_up_to=0)
        until = 0.0 if deadline is None else max(deadline, 1e-9)  # 0: none, for the C walks
        if self._paths is not None:
            status = functions.paths(self._paths.pointer, rows.ctypes.data, n_rows, self.n_features,
                                     self.n_outputs, phi.ctypes.data, until)
        else:
            status = functions.shap(*self._model, rows.ctypes.data, n_rows, self.n_features, self.n_outputs,
                                    phi.ctypes.data, until)
        if status == TIMED_OUT:
            raise ExplanationTimedOut(f"the explanation of {n_rows:,} rows was stopped: its deadline passed")
        raise_for(status)
        if self.averaged:
            phi /= self.n_trees
        return self.base_value, phi
