"""An XGBoost model's trees as one array a field (every tree's nodes one after another), checked and renumbered
from their roots in a few passes over all the trees at once: one NumPy pass a level, never one a node or a tree.

Every tree is renumbered from its root, parents before children in the order XGBoost's own walk would meet
them (breadth first, left before right), which also refuses children outside the tree, cycles and shared
nodes; nodes no root reaches (deleted ones) are left out.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from registry.errors import InvalidArtifact
from registry.inference.tree_walk import NAN_LEFT, WIDE_NODE

MAX_DEPTH = 256
# Each field of a tree's object in the file, and its name here.
FIELDS = {"left_children": "left", "right_children": "right", "split_indices": "feature",
          "split_conditions": "condition", "default_left": "default_left", "split_type": "split_type",
          "sum_hessian": "cover"}


@dataclass
class Trees:
    """Every tree's nodes, one tree after another (``compact`` forms): ``sizes`` says how many each has;
    ``cover`` (``sum_hessian``) is None unless every tree has one a node."""
    sizes: np.ndarray
    left: np.ndarray
    right: np.ndarray
    feature: np.ndarray
    condition: np.ndarray
    default_left: np.ndarray
    split_type: np.ndarray
    cover: np.ndarray | None


def compact(name: str, values: np.ndarray) -> np.ndarray:
    """A field's values as the walk needs them, in as few bytes: children and columns as int32 (a value past
    int32 is pinned to one that is refused all the same), flags as booleans, numbers as float32 (XGBoost's own)."""
    if name in ("condition", "cover"):
        with np.errstate(over="ignore"):  # past float32: infinite, refused where it is a leaf's value
            return values.astype(np.float32)
    if values.dtype.kind == "f":  # floats: the integers they hold, as XGBoost's loader casts them
        with np.errstate(invalid="ignore"):
            if not np.isfinite(values).all():
                raise InvalidArtifact("XGBoost model: a tree's node index or flag is not an integer")
        values = np.clip(values, -2.0**62, 2.0**62).astype(np.int64)
    if name in ("default_left", "split_type"):
        return values != 0
    return np.clip(values, -2, 2**31 - 1).astype(np.int32)


class TreeMark:
    """Where a reader took a tree's object out of the document: the ``index``-th tree of the file."""
    __slots__ = ("index",)

    def __init__(self, index: int):
        self.index = index


def check_trees(value, trees: Trees | None) -> None:
    """Refuse a model whose ``trees`` is not the list of every tree object its reader took out, in order."""
    if not isinstance(value, list) or trees is None or len(value) != len(trees.sizes) or not all(
            isinstance(tree, TreeMark) and tree.index == i for i, tree in enumerate(value)):
        raise InvalidArtifact("XGBoost model: 'trees' is not a list of the model's tree objects")


class TreeObjects:
    """Takes each tree's object out of a UBJSON document as its reader finishes it (``hook``), keeping only the
    arrays a walk needs, a few thousand trees' worth in one array a field: never a Python object a tree."""

    _BATCH = 4096

    def __init__(self, max_trees: int):
        self.max_trees = max_trees
        self.parts: dict[str, list[np.ndarray]] = {name: [] for name in FIELDS.values()}
        self.sizes: list[int] = []
        self.covered = True

    def hook(self, value: dict):
        """A marker for a tree's object (its arrays kept), any other object as it is."""
        if "left_children" not in value:
            return value
        size = len(_array(value, "left_children"))
        self.covered = self.covered and _covered(value, size)
        for key, name in FIELDS.items():
            if name == "cover" and not self.covered:
                continue
            part = value.get(key)
            if type(part) is not np.ndarray or part.ndim != 1 or part.dtype.kind not in "iuf":  # not UBJSON's array
                part = _array(value, key) if key != "split_type" or key in value else np.zeros(size, np.int8)
            if len(part) != size:
                raise InvalidArtifact("XGBoost model: a tree's node arrays are empty or of different lengths")
            self.parts[name].append(part)
        self.sizes.append(size)
        if len(self.sizes) > self.max_trees:
            raise InvalidArtifact(f"XGBoost model: more than {self.max_trees:,} trees")
        if len(self.sizes) % self._BATCH == 0:
            self._join()
        return TreeMark(len(self.sizes) - 1)

    def trees(self) -> Trees | None:
        """Every tree taken out, one array a field (None when there was none)."""
        if not self.sizes:
            return None
        self._join()
        fields = {name: compact(name, parts[0]) if parts else None for name, parts in self.parts.items()}
        if not self.covered:
            fields["cover"] = None
        return Trees(sizes=np.array(self.sizes, dtype=np.int64), **fields)

    def _join(self) -> None:
        for name, parts in self.parts.items():
            if name == "cover" and not self.covered:
                parts.clear()
            elif len(parts) > 1:
                parts[:] = [np.concatenate(parts)]


def _covered(tree: dict, size: int) -> bool:
    hessians = tree.get("sum_hessian")
    return hessians is not None and np.ndim(hessians) == 1 and len(hessians) == size


def _array(tree: dict, key: str) -> np.ndarray:
    values = tree.get(key)
    if not isinstance(values, (list, np.ndarray)):
        raise InvalidArtifact(f"XGBoost model: a tree's {key!r} is missing or not a list of numbers")
    if isinstance(values, list):
        try:
            values = np.asarray(values)
        except (ValueError, TypeError):
            values = None
    if values is None or values.ndim != 1 or values.dtype.kind not in "iuf" and len(values):
        raise InvalidArtifact(f"XGBoost model: a tree's {key!r} is missing or not a list of numbers")
    return values


def records(trees: Trees, n_features: int, max_nodes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                                    np.ndarray | None]:
    """Every tree's nodes renumbered from its root, as wide records, their leaf values, the roots, and the
    nodes' covers (``sum_hessian`` in float32 as XGBoost holds it, the weights shap and XGBoost's own TreeSHAP
    use; None where a tree has none)."""
    sizes = trees.sizes
    if (sizes <= 0).any():
        raise InvalidArtifact("XGBoost model: a tree's node arrays are empty or of different lengths")
    if int(sizes.sum()) > max_nodes:
        raise InvalidArtifact(f"XGBoost model: more than {max_nodes} nodes")
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int32)
    leaf = (trees.left == -1) & (trees.right == -1)
    order, tree_of = _breadth_first(trees, leaf, starts, n_features)
    by_tree = np.argsort(tree_of, kind="stable")  # each tree's nodes together, in their breadth-first order
    kept, node_tree = order[by_tree], tree_of[by_tree]
    del order, tree_of, by_tree
    new_id = np.full(len(leaf), -1, dtype=np.int32)
    new_id[kept] = np.arange(len(kept), dtype=np.int32)
    is_leaf = leaf[kept]
    condition = trees.condition[kept]
    if not np.isfinite(condition[is_leaf]).all():
        raise InvalidArtifact("XGBoost model: a leaf value is not a finite number")
    part = np.zeros(len(kept), dtype=WIDE_NODE)
    part["threshold"] = np.where(is_leaf, np.inf, np.nextafter(condition, np.float32(-np.inf)).astype(np.float64))
    part["feature"] = np.where(is_leaf, 0, trees.feature[kept]).astype(np.uint32) | np.where(
        ~is_leaf & trees.default_left[kept], NAN_LEFT, 0).astype(np.uint32)
    own = np.arange(len(kept), dtype=np.int32)
    origin = starts[node_tree]
    part["child"][:, 0] = np.where(is_leaf, own, new_id[np.where(is_leaf, 0, trees.right[kept]) + origin])
    part["child"][:, 1] = np.where(is_leaf, own, new_id[np.where(is_leaf, 0, trees.left[kept]) + origin])
    values = np.ascontiguousarray(np.where(is_leaf, condition, 0).astype(np.float64))
    roots = np.searchsorted(node_tree, np.arange(len(sizes))).astype(np.int32)
    cover = None if trees.cover is None else np.ascontiguousarray(trees.cover[kept].astype(np.float64))
    return part, values, roots, cover


def _breadth_first(trees: Trees, leaf: np.ndarray, starts: np.ndarray, n_features: int) -> tuple[np.ndarray,
                                                                                                  np.ndarray]:
    """Every node some root reaches (by its place among all the trees' nodes) level by level, each level in
    the order a breadth-first walk of each tree meets it, and the tree of each; refused where a child is
    outside its tree or reached twice, or a node deeper than ``MAX_DEPTH``."""
    sizes = trees.sizes
    frontier, frontier_tree = starts.copy(), np.arange(len(sizes), dtype=np.int32)
    seen = np.zeros(len(leaf), dtype=bool)
    seen[frontier] = True
    levels, level_trees, depth = [], [], 0
    while len(frontier):
        levels.append(frontier)
        level_trees.append(frontier_tree)
        inner = ~leaf[frontier]
        nodes, owners = frontier[inner], frontier_tree[inner]
        if not len(nodes):
            break
        if trees.split_type[nodes].any():
            raise InvalidArtifact("XGBoost model: categorical splits are not served yet")
        feature = trees.feature[nodes]
        if ((feature < 0) | (feature >= n_features)).any():
            raise InvalidArtifact(f"XGBoost model: a node tests a column past the model's {n_features}")
        if np.isnan(trees.condition[nodes]).any():
            raise InvalidArtifact("XGBoost model: a split condition is NaN")
        if depth >= MAX_DEPTH:
            raise InvalidArtifact(f"XGBoost model: a tree deeper than {MAX_DEPTH}")
        children = np.stack([trees.left[nodes], trees.right[nodes]], axis=1).ravel()
        owners = np.repeat(owners, 2)
        if ((children < 0) | (children >= sizes[owners])).any():
            raise InvalidArtifact("XGBoost model: a node's child is outside its tree or reached twice")
        children = children + starts[owners]
        ordered = np.sort(children)
        if seen[children].any() or (ordered[1:] == ordered[:-1]).any():
            raise InvalidArtifact("XGBoost model: a node's child is outside its tree or reached twice")
        seen[children] = True
        frontier, frontier_tree, depth = children, owners, depth + 1
    return np.concatenate(levels), np.concatenate(level_trees)
