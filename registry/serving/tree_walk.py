"""The compiled tree walker (``native/tree_walk.c``), loaded with ctypes, and the node records it walks.

``make`` builds the library beside its source (``cc`` and nothing else: it uses no Python API, so one
build serves every Python); the image builds its own. A checkout where it was not built cannot serve
a tree, so importing this module says what to run instead of serving anything slower or different.

A call of up to ``_KEEPS_GIL_UP_TO_WALKS`` walks (trees × rows: a single row of a 1,000-tree forest)
keeps the GIL (``ctypes.PyDLL``): it lasts tens of microseconds at most, and handing the GIL over and
back costs a worker whose other threads want it more than that. A larger call lets it go
(``ctypes.CDLL``) so that the worker's other threads run meanwhile.

The records are checked when a walker is made (``check_nodes``), and the walk checks every root,
column and child again as it reads them: they may be a file that every worker maps, and a file can
be changed under a running worker. A walk that would leave the records raises ``NodesDamaged``
rather than read outside them.
"""
from __future__ import annotations

import ctypes
from pathlib import Path

import numpy as np

LIBRARY = Path(__file__).with_name("native") / "tree_walk.so"
VERSION = 2  # tree_walk.c's TREE_WALK_VERSION: the interface this module calls
# One node: go to child[1] where x <= threshold, else child[0]; a leaf's children are itself.
NODE = np.dtype([("threshold", "<f4"), ("feature", "<u4"), ("child", "<i4", (2,))])
NAN_LEFT = np.uint32(1 << 31)  # set in ``feature`` where a NaN goes left
MAX_NODES = 2**31 - 1  # child ids are int32
_KEEPS_GIL_UP_TO_WALKS = 1024
# What tree_walk_output returns when the records are not what they were when checked.
_DAMAGE = {
    1: "a root is outside the nodes",
    2: "a node's child is outside the nodes, or a walk goes round in circles",
    3: "a node tests a column past the model's",
    4: "a walk ended on a node that is not a leaf",
}


class WalkerNotBuilt(RuntimeError):
    """The compiled walker's library is not there: the checkout was not built."""


class InvalidNodes(ValueError):
    """Node records a walk could leave or never end in (a damaged or hand-made model)."""


class NodesDamaged(RuntimeError):
    """Records that were checked when the walker was made no longer hold: the file they are mapped from
    was changed since. Nothing outside the records was read; the walker cannot answer until it is made again."""


def load(path: Path = LIBRARY) -> tuple:
    """The walker's output function twice: one call keeping the GIL, one letting it go."""
    if not path.exists():
        raise WalkerNotBuilt(f"{path} is missing: `make` builds it (it needs a C compiler, cc)")
    functions = []
    for kind in (ctypes.PyDLL, ctypes.CDLL):
        library = kind(str(path))
        if library.tree_walk_node_size() != NODE.itemsize or _version(library) != VERSION:
            raise WalkerNotBuilt(f"{path} was built from another version of tree_walk.c: run `make` again")
        output = library.tree_walk_output
        output.argtypes = [ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p,
                           ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64,
                           ctypes.c_void_p]
        output.restype = ctypes.c_int64
        functions.append(output)
    return tuple(functions)


def _version(library: ctypes.CDLL) -> int | None:
    try:
        version = library.tree_walk_version
    except AttributeError:  # built before the walk checked what it reads
        return None
    version.restype = ctypes.c_int64
    return version()


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
        # The walk reads no further than these lengths, whatever the records say.
        self._model = (nodes.ctypes.data, len(nodes), roots.ctypes.data, len(roots), value.ctypes.data,
                       self.n_outputs, int(averaged))

    def output(self, rows: np.ndarray) -> np.ndarray:
        """The model's output, shape (rows, outputs), for C-contiguous float32 ``rows`` of ``n_features``.

        Raises ``NodesDamaged`` when the records changed since they were checked."""
        n_rows = len(rows)
        # The rows as bytes and the output as a ctypes array: passed by address with no ndarray.ctypes
        # object made, which costs more than the copy of a few rows.
        out = (ctypes.c_double * (n_rows * self.n_outputs))()
        output = _OUTPUT_KEEPING_GIL if n_rows * self.n_trees <= _KEEPS_GIL_UP_TO_WALKS else _OUTPUT_RELEASING_GIL
        status = output(*self._model, rows.tobytes(), n_rows, self.n_features, out)
        if status:
            raise NodesDamaged(f"{_DAMAGE.get(status, f'status {status}')}: the node records changed since they "
                               "were checked")
        return np.frombuffer(out).reshape(n_rows, self.n_outputs)


def check_nodes(nodes: np.ndarray, roots: np.ndarray, n_features: int) -> None:
    """Raise ``InvalidNodes`` unless every walk from ``roots`` stays inside ``nodes`` and ends on a leaf:
    each node tests a column below ``n_features``, and each child is a node after it, but at a leaf,
    whose two children are the leaf itself."""
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
    if ((child == ids[:, np.newaxis]).any(axis=1) & (child[:, 0] != child[:, 1])).any():
        raise InvalidNodes("a node that is not a leaf is its own child")
    if ((nodes["feature"] & ~NAN_LEFT) >= n_features).any():
        raise InvalidNodes(f"a node tests a column past the model's {n_features}")
    if ((roots < 0) | (roots >= len(nodes))).any():
        raise InvalidNodes("a root is outside the nodes")
