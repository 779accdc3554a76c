"""The compiled tree walker (``native/tree_walk.c``), loaded with ctypes, and the node records it walks.

``make`` builds the library beside its source (``cc`` and nothing else: it uses no Python API, so one
build serves every Python); the image builds its own. A checkout where it was not built cannot serve
a tree, so importing this module says what to run instead of serving anything slower or different.

A call of up to ``_KEEPS_GIL_UP_TO_WALKS`` walks (trees × rows: a single row of a 1,000-tree forest)
keeps the GIL (``ctypes.PyDLL``): it lasts tens of microseconds at most, and handing the GIL over and
back costs a worker whose other threads want it more than that. A larger call lets it go
(``ctypes.CDLL``) so that the worker's other threads run meanwhile.
"""
from __future__ import annotations

import ctypes
from pathlib import Path

import numpy as np

LIBRARY = Path(__file__).with_name("native") / "tree_walk.so"
# One node: go to child[1] where x <= threshold, else child[0]; a leaf's children are itself.
NODE = np.dtype([("threshold", "<f4"), ("feature", "<u4"), ("child", "<i4", (2,))])
NAN_LEFT = np.uint32(1 << 31)  # set in ``feature`` where a NaN goes left
MAX_NODES = 2**31 - 1  # child ids are int32
_KEEPS_GIL_UP_TO_WALKS = 1024


class WalkerNotBuilt(RuntimeError):
    """The compiled walker's library is not there: the checkout was not built."""


class InvalidNodes(ValueError):
    """Node records a walk could leave or never end in (a damaged or hand-made model)."""


def load(path: Path = LIBRARY) -> tuple:
    """The walker's output function twice: one call keeping the GIL, one letting it go."""
    if not path.exists():
        raise WalkerNotBuilt(f"{path} is missing: `make` builds it (it needs a C compiler, cc)")
    functions = []
    for kind in (ctypes.PyDLL, ctypes.CDLL):
        library = kind(str(path))
        if library.tree_walk_node_size() != NODE.itemsize:
            raise WalkerNotBuilt(f"{path} was built from another version of tree_walk.c: run `make` again")
        output = library.tree_walk_output
        output.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p, ctypes.c_int64,
                           ctypes.c_int64, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p]
        output.restype = None
        functions.append(output)
    return tuple(functions)


_OUTPUT_KEEPING_GIL, _OUTPUT_RELEASING_GIL = load()


class Walker:
    """Trees given as node records, ready to answer rows: the arrays are checked once, here."""

    def __init__(self, nodes: np.ndarray, roots: np.ndarray, value: np.ndarray, *, n_features: int, averaged: bool):
        check_nodes(nodes, roots, n_features)
        if value.dtype != np.float64 or value.ndim != 2 or len(value) != len(nodes) or not value.flags.c_contiguous:
            raise InvalidNodes("the leaf values are not one contiguous float64 row per node")
        if not averaged and len(roots) != 1:
            raise InvalidNodes("a single tree has one root")
        self._arrays = (nodes, roots, value)  # kept alive for the addresses below
        self.n_trees = len(roots)
        self.n_features = n_features
        self.n_outputs = value.shape[1]
        self._model = (nodes.ctypes.data, roots.ctypes.data, len(roots), value.ctypes.data, self.n_outputs,
                       int(averaged))

    def output(self, rows: np.ndarray) -> np.ndarray:
        """The model's output, shape (rows, outputs), for C-contiguous float32 ``rows`` of ``n_features``."""
        n_rows = len(rows)
        # The rows as bytes and the output as a ctypes array: passed by address with no ndarray.ctypes
        # object made, which costs more than the copy of a few rows.
        out = (ctypes.c_double * (n_rows * self.n_outputs))()
        output = _OUTPUT_KEEPING_GIL if n_rows * self.n_trees <= _KEEPS_GIL_UP_TO_WALKS else _OUTPUT_RELEASING_GIL
        output(*self._model, rows.tobytes(), n_rows, self.n_features, out)
        return np.frombuffer(out).reshape(n_rows, self.n_outputs)


def check_nodes(nodes: np.ndarray, roots: np.ndarray, n_features: int) -> None:
    """Raise ``InvalidNodes`` unless every walk from ``roots`` stays inside ``nodes`` and ends: each
    node tests a column below ``n_features``, and each child is the node itself (a leaf) or a node after it."""
    if nodes.dtype != NODE or nodes.ndim != 1 or not nodes.flags.c_contiguous:
        raise InvalidNodes(f"nodes are not a contiguous array of {NODE}")
    if roots.dtype != np.int32 or roots.ndim != 1 or not roots.flags.c_contiguous or not len(roots):
        raise InvalidNodes("roots are not a non-empty contiguous int32 array")
    if len(nodes) > MAX_NODES:
        raise InvalidNodes(f"more than {MAX_NODES} nodes")
    ids = np.arange(len(nodes))
    child = nodes["child"]
    if ((child < ids[:, np.newaxis]) | (child >= len(nodes))).any():
        raise InvalidNodes("a node's child is outside the nodes or before the node")
    if ((nodes["feature"] & ~NAN_LEFT) >= n_features).any():
        raise InvalidNodes(f"a node tests a column past the model's {n_features}")
    if ((roots < 0) | (roots >= len(nodes))).any():
        raise InvalidNodes("a root is outside the nodes")
