"""One tree of a LightGBM text model (``Tree::Tree(const char*)``), its arrays checked against ``num_leaves``
and renumbered into wide node records: see ``lightgbm_files`` for the rules a walk follows. Its nodes' counts
(``internal_count``, ``leaf_count``: the training rows under each node) are their covers for TreeSHAP."""
from __future__ import annotations

import re
import warnings

import numpy as np

from registry.errors import InvalidArtifact
from registry.inference.tree_walk import BITSET_WORDS, BLOCK_BITS, CATEGORICAL, NAN_LEFT, WIDE_NODE, ZERO_MISSING

MAX_SET_WORDS = 2**26  # a category is an int32: at most 2^31 bits
MAX_COUNT = 2**31 - 1  # LightGBM's counts are data_size_t (int32)
_INTEGER = re.compile(r"[+-]?[0-9]{1,10}")
_MAX_INTEGER_BYTES = 4096  # an integer with its spaces
# What a line of numbers may hold (anything else is refused before NumPy reads it): no NaN, no hexadecimal.
_FLOAT_CHARACTERS = b"0123456789.eE+-inf "
_INTEGER_CHARACTERS = b"0123456789+- "
_DEFAULT_LEFT, _MISSING_NONE, _MISSING_ZERO = 2, 0, 1


class TreeBlock:
    """One tree's arrays as ``Tree::Tree(const char*)`` reads them, each checked against ``num_leaves``."""

    def __init__(self, block: dict[bytes, bytes], index: int, *, n_features: int, max_leaves: int):
        self.where = f"LightGBM model: tree {index}"
        self.max_leaves = max_leaves
        self.n_features = n_features
        self.block = block
        self.n_leaves = self._count("num_leaves", low=1)
        self.n_cat = self._count("num_cat", low=0)
        if block.get(b"is_linear", b"0") != b"0":
            raise InvalidArtifact(f"{self.where} is a linear tree (linear_tree), which is not served")
        self.leaf_value = self._floats("leaf_value", self.n_leaves)
        if not np.isfinite(self.leaf_value).all():
            raise InvalidArtifact(f"{self.where} has a leaf value that is not a finite number")
        self.leaf_count = self._counts("leaf_count", self.n_leaves)
        if self.n_leaves == 1:  # a single leaf: LightGBM reads nothing else
            return
        inner = self.n_leaves - 1
        self.left = self._ints("left_child", inner)
        self.right = self._ints("right_child", inner)
        self.feature = self._ints("split_feature", inner)
        self.threshold = self._floats("threshold", inner)
        self.decision = self._ints("decision_type", inner) if b"decision_type" in block else np.zeros(inner, np.int64)
        self.internal_count = self._counts("internal_count", inner)
        if inner and self.n_cat:
            self.boundaries = self._ints("cat_boundaries", self.n_cat + 1)
            if self.boundaries[0] != 0 or (np.diff(self.boundaries) < 0).any():
                raise InvalidArtifact(f"{self.where}: cat_boundaries do not rise from 0")
            self.words = self._ints("cat_threshold", int(self.boundaries[-1]))
            if ((self.words < 0) | (self.words >= 2**32)).any() or (np.diff(self.boundaries) > MAX_SET_WORDS).any():
                raise InvalidArtifact(f"{self.where}: cat_threshold holds a word that is not a uint32, or a set "
                                      "too long")

    def records(self, *, offset: int, first_block: int) -> tuple[np.ndarray, np.ndarray, list[np.ndarray],
                                                                 np.ndarray | None]:
        """The tree's nodes as wide records numbered from ``offset``, their values, its sets' blocks (the
        first of them is the model's block ``first_block``) and their covers (``covers``)."""
        if self.n_leaves == 1:
            part = np.zeros(1, dtype=WIDE_NODE)
            part["threshold"], part["child"] = np.inf, offset
            return part, self.leaf_value.copy(), [], self.covers(np.array([-1]))
        order = np.array(self._order())
        leaf, ids = order < 0, np.arange(len(order)) + offset
        inner = np.where(leaf, 0, order)
        new_inner, new_leaf = np.zeros(self.n_leaves - 1, np.int64), np.zeros(self.n_leaves, np.int64)
        new_inner[order[~leaf]], new_leaf[~order[leaf]] = ids[~leaf], ids[leaf]

        def renumbered(children: np.ndarray) -> np.ndarray:
            return np.where(leaf, ids, np.where(children >= 0, new_inner[np.maximum(children, 0)],
                                                new_leaf[np.maximum(~children, 0)]))

        feature, decision, threshold = self.feature[inner], self.decision[inner], self.threshold[inner]
        if ((feature < 0) | (feature >= self.n_features)).any():
            raise InvalidArtifact(f"{self.where}: a node tests a column past the model's {self.n_features}")
        if ((decision < 0) | (decision >= 16) | (decision >> 2 == 3)).any():
            raise InvalidArtifact(f"{self.where}: a decision_type is not one LightGBM writes")
        if np.isnan(threshold).any():
            raise InvalidArtifact(f"{self.where}: a threshold is NaN")
        missing, default_left = decision >> 2, (decision & _DEFAULT_LEFT) != 0
        nan_left = np.where(missing == _MISSING_NONE, 0.0 <= threshold, default_left)
        part = np.zeros(len(order), dtype=WIDE_NODE)
        part["feature"] = np.where(leaf, 0, feature | np.where(nan_left, NAN_LEFT, 0)
                                   | np.where(missing == _MISSING_ZERO, ZERO_MISSING, 0)).astype(np.uint32)
        part["threshold"] = np.where(leaf, np.inf, threshold)
        part["child"][:, 0] = renumbered(self.right[inner])
        part["child"][:, 1] = renumbered(self.left[inner])
        blocks: list[np.ndarray] = []
        for i in np.flatnonzero(~leaf & (decision & 1 != 0)):
            words = self._set(float(threshold[i]))
            part[i]["feature"] = int(CATEGORICAL) | int(feature[i])
            part[i]["threshold"] = len(words) * BLOCK_BITS
            part[i]["bitset"] = first_block + len(blocks)
            blocks.extend(words)
        return part, np.where(leaf, self.leaf_value[np.maximum(~order, 0)], 0.0), blocks, self.covers(order)

    def covers(self, order: np.ndarray) -> np.ndarray | None:
        """The count of each node of ``order`` (internal nodes >= 0, leaves < 0) as float64: what LightGBM's
        ``Tree::TreeSHAP`` weighs a node by (``data_count``). A single leaf weighs nothing (its value is its
        tree's expected value, count or none). None where a tree with splits records no counts (LightGBM then
        reads zeros, and its own contributions are NaN), or counts that do not add up: an internal node's must
        be its children's sum, as ``Tree::Split`` makes it, or LightGBM's expected value (a sum over the
        leaves) would not be the one its own TreeSHAP explains from."""
        if self.n_leaves == 1:
            return np.zeros(1) if self.leaf_count is None else self.leaf_count.astype(np.float64)
        if self.leaf_count is None or self.internal_count is None:
            return None

        def count(children: np.ndarray) -> np.ndarray:
            return np.where(children >= 0, self.internal_count[np.maximum(children, 0)],
                            self.leaf_count[np.maximum(~children, 0)])

        if (count(self.left) + count(self.right) != self.internal_count).any():
            return None
        return np.where(order < 0, self.leaf_count[np.maximum(~order, 0)],
                        self.internal_count[np.maximum(order, 0)]).astype(np.float64)

    def _order(self) -> list[int]:
        """Internal nodes (>= 0) and leaves (< 0) from the root, parents before children, each reached once."""
        left, right = self.left.tolist(), self.right.tolist()
        order, seen, position = [0], {0}, 0
        while position < len(order):
            node = order[position]
            position += 1
            if node < 0:
                continue
            for child in (left[node], right[node]):
                if not -self.n_leaves <= child < self.n_leaves - 1 or child in seen:
                    raise InvalidArtifact(f"{self.where}: a node's child is outside the tree or reached twice")
                seen.add(child)
                order.append(child)
        return order

    def _set(self, threshold: float) -> list[np.ndarray]:
        """The blocks of the categorical split's set that ``threshold`` names (padded with zero words)."""
        if not self.n_cat or not (threshold.is_integer() and 0 <= threshold < self.n_cat):
            raise InvalidArtifact(f"{self.where}: a categorical split names a set the tree does not hold")
        words = self.words[self.boundaries[int(threshold)]:self.boundaries[int(threshold) + 1]]
        n_blocks = max(1, -(-len(words) // BITSET_WORDS))
        padded = np.zeros(n_blocks * BITSET_WORDS, dtype=np.uint32)
        padded[:len(words)] = words
        return list(padded.reshape(n_blocks, BITSET_WORDS))

    def _count(self, key: str, *, low: int) -> int:
        if key.encode() not in self.block:
            raise InvalidArtifact(f"{self.where} has no {key}")
        count = read_int(self.block[key.encode()], key)
        if not low <= count <= self.max_leaves:
            raise InvalidArtifact(f"{self.where}: {key} {count} is not between {low} and {self.max_leaves}")
        return count

    def _counts(self, key: str, n: int) -> np.ndarray | None:
        """The ``n`` counts of the line ``key``, each between 0 and ``MAX_COUNT``; None where the line is not there."""
        if key.encode() not in self.block:
            return None
        counts = self._ints(key, n)
        if ((counts < 0) | (counts > MAX_COUNT)).any():
            raise InvalidArtifact(f"{self.where}: {key} holds a count that is not between 0 and {MAX_COUNT}")
        return counts

    def _floats(self, key: str, n: int) -> np.ndarray:
        return self._numbers(key, n, np.float64, _FLOAT_CHARACTERS)

    def _ints(self, key: str, n: int) -> np.ndarray:
        return self._numbers(key, n, np.int64, _INTEGER_CHARACTERS)

    def _numbers(self, key: str, n: int, dtype, characters: bytes) -> np.ndarray:
        """The ``n`` numbers of the line ``key``, counted before they are read and read by NumPy (correctly
        rounded, as LightGBM reads these arrays), so that a line costs an array, never a Python object a value."""
        if key.encode() not in self.block:
            raise InvalidArtifact(f"{self.where} has no {key}")
        line = self.block[key.encode()]
        count = line.count(b" ") + 1 if line else 0
        if count != n:
            raise InvalidArtifact(f"{self.where}: {key} holds {count} values, not {n}")
        if not n:
            return np.zeros(0, dtype=dtype)
        if line.translate(None, characters):
            raise InvalidArtifact(f"{self.where}: {key} holds something that is not a number")
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # NumPy warns, and stops, where a line does not read to its end
            try:
                numbers = np.fromstring(line, dtype=dtype, sep=" ")
            except (ValueError, OverflowError, DeprecationWarning):
                raise InvalidArtifact(f"{self.where}: {key} holds something that is not a number") from None
        if len(numbers) != n:
            raise InvalidArtifact(f"{self.where}: {key} holds something that is not a number")
        return numbers


def read_int(text: str | bytes, key: str) -> int:
    """A header's or tree's count, refused unless it is a decimal integer (``text`` is UTF-8 when bytes: only a
    short one is decoded)."""
    if isinstance(text, bytes):  # a longer one is no integer LightGBM writes: its start is enough to say so
        text = text.decode("utf-8", "replace") if len(text) <= _MAX_INTEGER_BYTES \
            else text[:40].decode("utf-8", "replace") + "…"
    if not _INTEGER.fullmatch(text.strip()):
        raise InvalidArtifact(f"LightGBM model: {key} {text[:40]!r} is not an integer")
    return int(text.strip())  # str.strip takes more than int() does: the separators \x1c to \x1f
