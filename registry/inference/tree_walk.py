"""The compiled tree walker (``native/tree_walk.c``), loaded with ctypes, and the node records it walks:
``NODE`` for trees and forests (float32 thresholds), ``WIDE_NODE`` for boosted models (float64
thresholds, categorical splits, one output column per tree).

Installing the package builds the library into it (setup.py, with the machine's C compiler): ``pip install .``
beside this module in site-packages, ``pip install -e .`` (what ``make`` runs) beside its source in the
checkout. It uses no Python API. A checkout that was not installed cannot serve a tree, so importing
this module says what to run instead of serving anything slower or different.

A call of up to ``KEEPS_GIL_UP_TO_WALKS`` walks (trees × rows: a single row of a 1,000-tree forest)
keeps the GIL (``ctypes.PyDLL``): it lasts tens of microseconds at most, and handing the GIL over and
back costs a worker whose other threads want it more than that. A larger call lets it go
(``ctypes.CDLL``) so that the worker's other threads run meanwhile. Once the service asked for it
(:func:`lower_large_calls`), a call of many walks also runs on a thread of its own at a lower CPU
priority (a nice value, or SCHED_IDLE: ``native/low_priority.h``), its caller waiting: a flood of large
batches then gives way to the worker's small requests and to everything else on the machine.

The records are checked when a walker is made (``check_nodes``), and the walk checks every root,
column and child again as it reads them: they may be a file that every worker maps, and a file can
be changed under a running worker. A walk that would leave the records raises ``NodesDamaged``
rather than read outside them.

A batch of a numeric model with float32 rows (XGBoost, GradientBoosting) walks instead a copy of its trees
that the library made in the worker's own memory from the records, checking each as it read it
(``COMPACT_FROM_ROWS``, ``COMPACT_MAX_BYTES``); so does a batch of a tree or forest, over a copy with each
split's children side by side (``FOREST_COPY_FROM_ROWS``, ``FOREST_COPY_MAX_BYTES``). Records that changed
before a copy was made raise ``NodesDamaged`` then; once made, the copy is the worker's own and nothing another
process writes reaches it.
"""
from __future__ import annotations

import ctypes
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np

LIBRARY = Path(__file__).with_name("native") / "tree_walk.so"
VERSION = 14  # tree_walk.c's TREE_WALK_VERSION: the interface this module calls
# One node: go to child[1] where x <= threshold, else child[0]; a leaf's children are itself.
NODE = np.dtype([("threshold", "<f4"), ("feature", "<u4"), ("child", "<i4", (2,))])
# One node of a boosted tree: the threshold in float64, and for a categorical split (CATEGORICAL set in
# ``feature``) the first of its 256-bit blocks among the model's bitsets (8 uint32 words each), its
# ``threshold`` then being the set's size in bits (256 per block).
WIDE_NODE = np.dtype([("threshold", "<f8"), ("feature", "<u4"), ("bitset", "<u4"), ("child", "<i4", (2,))])
NAN_LEFT = np.uint32(1 << 31)  # set in ``feature`` where a NaN goes left
CATEGORICAL = np.uint32(1 << 30)  # set in a wide node's ``feature`` where the split is categorical
ZERO_MISSING = np.uint32(1 << 29)  # set in a wide node's ``feature`` where a zero goes where a NaN goes
BITSET_WORDS = 8
BLOCK_BITS = 32 * BITSET_WORDS
_FLOAT32_SUMS, LIGHTGBM_ROWS, _FLOAT32_ROWS, _NUMERIC_ONLY = 1, 2, 4, 8  # tree_walk_boosted's options (LIGHTGBM_ROWS also tree_shap's)
_INFINITE_ROW, _NO_MEMORY = 8, 9  # what a boosted walk returns for its rows rather than for its records
MAX_NODES = 2**31 - 1  # child ids are int32
KEEPS_GIL_UP_TO_WALKS = 1024
# A numeric model with float32 rows (XGBoost, GradientBoosting) walks a call of this many rows or more over a
# private copy of its trees laid out for batches (tree_walk.c's tree_walk_compact_make), made at its first such
# call where it takes at most COMPACT_MAX_BYTES in that worker (16 bytes a slot of each tree's full tree: 1 MB
# for 1,000 trees of depth 6); a worker that only ever answers single rows makes none. From two rows on the copy
# is the faster walk (the records' one row is walked eight trees at a time, which the copy does not do).
COMPACT_FROM_ROWS = 2
COMPACT_MAX_BYTES = 8 * 2**20
# A tree or forest walks a call of this many rows or more over a private copy of its trees (tree_walk.c's
# tree_walk_forest_make), made at its first such call where its nodes (16 bytes each) and leaves' values take at
# most FOREST_COPY_MAX_BYTES in that worker (0.75 MB for 100 fully grown trees of 300 nodes); a larger forest is
# walked from its records. Below it a call walks the records, eight trees at once for one row: on the bench's forest
# the copy is 1.5x faster at 16 rows, 2.1x at 32 and 2.5x from 100, and no faster at 8 and fewer.
FOREST_COPY_FROM_ROWS = 16
FOREST_COPY_MAX_BYTES = 32 * 2**20
# What tree_walk_output returns when the records are not what they were when checked.
_DAMAGE = {
    1: "a root is outside the nodes",
    2: "a node's child is outside the nodes, or a walk goes round in circles",
    3: "a node tests a column past the model's",
    4: "a walk ended on a node that is not a leaf",
    5: "a tree adds to an output past the model's",
    6: "a categorical split's set is outside the bitsets",
    7: "a path is deeper than the records were when they were checked",
}
TIMED_OUT = 10  # what an explanation returns when its deadline passed (native/tree_shap.c)


class _Functions(NamedTuple):
    output: Callable[..., int]  # trees and forests
    boosted: Callable[..., int]  # boosted models
    xgboost_link: Callable[..., int]  # XGBoost's sigmoid and softmax in float32
    shap: Callable[..., int]  # path-dependent TreeSHAP (tree_shap.c)
    expectations: Callable[..., int]  # each node's expected value and depth, for TreeSHAP
    lightgbm_link: Callable[..., int]  # LightGBM's sigmoid, softmax and exp in float64
    compact_make: Callable[..., int | None]  # a numeric model's private copy for batches (None: NULL)
    compact_free: Callable[..., None]
    compact: Callable[..., int]  # a batch walked over that copy
    forest_make: Callable[..., int | None]  # a tree's or forest's private copy for batches (None: NULL)
    forest_free: Callable[..., None]
    forest: Callable[..., int]  # a batch walked over that copy
    paths_make: Callable[..., int | None]  # a tree's or forest's private copy for TreeSHAP, leaf by leaf (tree_shap.c)
    paths_free: Callable[..., None]
    paths: Callable[..., int]  # rows explained from that copy
    paths_supported: Callable[..., int]  # whether this CPU gets such copies (AVX2)


class WalkerNotBuilt(RuntimeError):
    """The compiled walker's library is not there: the checkout was not installed."""


class InvalidNodes(ValueError):
    """Node records a walk could leave or never end in (a damaged or hand-made model)."""


class NodesDamaged(RuntimeError):
    """Records that were checked when the walker was made no longer hold: the file they are mapped from
    was changed since. Nothing outside the records was read; the walker cannot answer until it is made again."""


def load(path: Path = LIBRARY) -> tuple[_Functions, _Functions]:
    """The walker's functions twice: called keeping the GIL, and letting it go."""
    if not path.exists():
        raise WalkerNotBuilt(f"{path} is missing: `pip install -e .` (or `make`) builds it (it needs a C compiler, cc)")
    functions = []
    pointer, size = ctypes.c_void_p, ctypes.c_int64
    for kind in (ctypes.PyDLL, ctypes.CDLL):
        library = kind(str(path))
        if library.tree_walk_node_size() != NODE.itemsize or _version(library) != VERSION \
                or library.tree_walk_wide_node_size() != WIDE_NODE.itemsize:
            raise WalkerNotBuilt(f"{path} was built from another version of tree_walk.c: run `pip install -e .` "
                                 "(or `make`) again")
        output = library.tree_walk_output
        output.argtypes = [pointer, size, pointer, size, pointer, size, size, pointer, size, size, pointer]
        boosted = library.tree_walk_boosted
        boosted.argtypes = [pointer, size, pointer, pointer, size, pointer, pointer, size, pointer, size, size, size,
                            pointer, size, size, pointer]
        link = library.tree_walk_xgboost_link
        link.argtypes = [size, pointer, size, size, pointer]
        shap = library.tree_shap
        shap.argtypes = [pointer, size, size, pointer, pointer, size, pointer, size, pointer, pointer, size, size,
                         size, pointer, size, size, size, pointer, ctypes.c_double]
        expectations = library.tree_shap_expectations
        expectations.argtypes = [pointer, size, size, pointer, size, pointer, pointer, pointer, pointer]
        lightgbm = library.tree_walk_lightgbm_link
        lightgbm.argtypes = [size, pointer, size, size, ctypes.c_double, pointer]
        output.restype = boosted.restype = link.restype = shap.restype = expectations.restype = ctypes.c_int64
        lightgbm.restype = ctypes.c_int64
        make = library.tree_walk_compact_make
        make.argtypes = [pointer, size, pointer, pointer, size, pointer, pointer, size, size, size, size,
                         ctypes.POINTER(ctypes.c_int64)]
        make.restype = pointer
        free = library.tree_walk_compact_free
        free.argtypes, free.restype = [pointer], None
        compact = library.tree_walk_compact
        compact.argtypes, compact.restype = [pointer, pointer, size, size, pointer], ctypes.c_int64
        forest_make = library.tree_walk_forest_make
        forest_make.argtypes = [pointer, size, pointer, size, pointer, size, size, size, size,
                                ctypes.POINTER(ctypes.c_int64)]
        forest_make.restype = pointer
        forest_free = library.tree_walk_forest_free
        forest_free.argtypes, forest_free.restype = [pointer], None
        forest = library.tree_walk_forest
        forest.argtypes, forest.restype = [pointer, pointer, size, size, pointer], ctypes.c_int64
        paths_make = library.tree_shap_paths_make
        paths_make.argtypes = [pointer, size, pointer, pointer, size, pointer, size, pointer, size, size,
                               ctypes.POINTER(ctypes.c_int64)]
        paths_make.restype = pointer
        paths_free = library.tree_shap_paths_free
        paths_free.argtypes, paths_free.restype = [pointer], None
        paths = library.tree_shap_paths
        paths.argtypes = [pointer, pointer, size, size, size, pointer, ctypes.c_double]
        paths.restype = ctypes.c_int64
        paths_supported = library.tree_shap_paths_supported
        paths_supported.argtypes, paths_supported.restype = [], ctypes.c_int64
        functions.append(_Functions(output, boosted, link, shap, expectations, lightgbm, make, free, compact,
                                    forest_make, forest_free, forest, paths_make, paths_free, paths, paths_supported))
    return functions[0], functions[1]


def _version(library: ctypes.CDLL) -> int | None:
    try:
        version = library.tree_walk_version
    except AttributeError:  # built before the walk checked what it reads
        return None
    version.restype = ctypes.c_int64
    return version()


def _lowered(functions: _Functions, library: ctypes.CDLL) -> _Functions:
    """``functions`` (letting go of the GIL), the walks and explanations among them run at low priority."""
    lowered = {}
    for field, name in (("output", "tree_walk_output_low"), ("boosted", "tree_walk_boosted_low"),
                        ("compact", "tree_walk_compact_low"), ("forest", "tree_walk_forest_low"),
                        ("shap", "tree_shap_low"), ("paths", "tree_shap_paths_low")):
        function = getattr(library, name)
        function.argtypes, function.restype = getattr(functions, field).argtypes, ctypes.c_int64
        lowered[field] = function
    return functions._replace(**lowered)


KEEPING_GIL, RELEASING_GIL = load()
_LIBRARY = ctypes.CDLL(str(LIBRARY))
AT_LOW_PRIORITY = _lowered(RELEASING_GIL, _LIBRARY)
_LIBRARY.low_priority_policy.restype = ctypes.c_int64
_LIBRARY.low_priority_set.argtypes, _LIBRARY.low_priority_set.restype = [ctypes.c_int64], None
_GOT_SCHED_IDLE, _NOT_LOWERED = 100, -1  # what low_priority.c says a thread got, besides a nice value
_low_priority_from = 0  # calls of this many walks or more run at low priority; 0: none (lower_large_calls)


def lower_large_calls(from_walks: int, *, nice: int | None = 10) -> None:
    """From now on in this process, run each call of ``from_walks`` walks or more (rows × trees) on a thread
    of lower CPU priority: ``nice`` (1 to 19), or SCHED_IDLE for None (it then runs only when nothing else
    wants the core); ``from_walks`` 0: none (a library's default, as in a Spark or Dask job's process)."""
    global _low_priority_from
    _LIBRARY.low_priority_set(0 if nice is None else min(19, max(1, nice)))
    _low_priority_from = max(0, int(from_walks))


def low_priority() -> str:
    """What a low-priority call's thread gets on this machine: ``SCHED_IDLE``, ``nice <n>`` or ``normal``."""
    got = _LIBRARY.low_priority_policy()
    return "SCHED_IDLE" if got == _GOT_SCHED_IDLE else "normal" if got == _NOT_LOWERED else f"nice {got}"


def functions_for(walks: int, *, keeps_gil_up_to: int = KEEPS_GIL_UP_TO_WALKS) -> _Functions:
    """The functions a call of ``walks`` walks takes: keeping the GIL up to ``keeps_gil_up_to``, letting it go
    above, and at low priority too from :func:`lower_large_calls`'s bound."""
    if walks <= keeps_gil_up_to:
        return KEEPING_GIL
    if _low_priority_from and walks >= _low_priority_from:
        return AT_LOW_PRIORITY
    return RELEASING_GIL


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
        # None until a batch asks for it, then the copy, or False where it would take too much memory.
        self._copy: PrivateCopy | bool | None = None

    def output(self, rows: np.ndarray) -> np.ndarray:
        """The model's output, shape (rows, outputs), for C-contiguous float32 ``rows`` of ``n_features``.

        Raises ``NodesDamaged`` when the records changed since they were checked."""
        n_rows = len(rows)
        # The rows as bytes and the output as a ctypes array: passed by address with no ndarray.ctypes
        # object made, which costs more than the copy of a few rows.
        out = (ctypes.c_double * (n_rows * self.n_outputs))()
        functions = functions_for(n_rows * self.n_trees)
        copy = self._copy if n_rows >= FOREST_COPY_FROM_ROWS and self._copy is not False else False
        if copy is None:
            copy = self._copy = PrivateCopy.make(RELEASING_GIL.forest_make, RELEASING_GIL.forest_free,
                                                  (*self._model, self.n_features, FOREST_COPY_MAX_BYTES)) or False
        if copy:
            status = functions.forest(copy.pointer, rows.tobytes(), n_rows, self.n_features, out)
            if status == _NO_MEMORY:
                raise MemoryError(f"no memory for the keys of {n_rows} rows")
        else:
            status = functions.output(*self._model, rows.tobytes(), n_rows, self.n_features, out)
        raise_for(status)
        return np.frombuffer(out).reshape(n_rows, self.n_outputs)


class BoostedWalker:
    """A boosted model's trees as wide node records, ready to answer float64 rows: checked once, here.

    With ``float32_sums`` every sum is rounded to float32 as it is made (XGBoost's accumulation); the
    baseline and leaf values are then float32 values held as float64. With ``lightgbm_rows`` a value
    within LightGBM's ``kZeroThreshold`` (``1e-35f``) of zero is read as zero, as LightGBM reads a row.
    ``columns[t]`` is the output tree ``t`` adds to; ``value[n]`` is leaf ``n``'s value; ``baseline`` is
    where every row's outputs start; ``bitsets`` holds the categorical splits' sets, 8 words each. With
    ``float32_rows`` the rows are rounded to float32 first, in the same call (GradientBoosting's and
    XGBoost's input), and with ``float32_sums`` too a row with a value infinite in float32 is refused.
    """

    def __init__(self, nodes: np.ndarray, roots: np.ndarray, columns: np.ndarray, value: np.ndarray,
                 bitsets: np.ndarray, baseline: np.ndarray, *, n_features: int, float32_sums: bool = False,
                 lightgbm_rows: bool = False, float32_rows: bool = False):
        check_nodes(nodes, roots, n_features)
        if value.dtype != np.float64 or value.shape != (len(nodes),) or not value.flags.c_contiguous:
            raise InvalidNodes("the leaf values are not one contiguous float64 value per node")
        if baseline.dtype != np.float64 or baseline.ndim != 1 or not len(baseline) or not baseline.flags.c_contiguous:
            raise InvalidNodes("the baseline is not a contiguous float64 value per output")
        if columns.dtype != np.int32 or columns.shape != roots.shape or not columns.flags.c_contiguous \
                or ((columns < 0) | (columns >= len(baseline))).any():
            raise InvalidNodes("the trees' output columns are not one int32 column of the model's per tree")
        if bitsets.dtype != np.uint32 or bitsets.ndim != 2 or bitsets.shape[1] != BITSET_WORDS \
                or not bitsets.flags.c_contiguous:
            raise InvalidNodes(f"the bitsets are not contiguous rows of {BITSET_WORDS} uint32 words")
        categorical = (nodes["feature"] & CATEGORICAL) != 0
        bits = nodes["threshold"][categorical]
        if not (bits > 0).all() or (nodes["bitset"][categorical] + np.ceil(bits / BLOCK_BITS) > len(bitsets)).any():
            raise InvalidNodes("a categorical split's set is outside the bitsets")
        # No categorical or zero-as-missing split and no LightGBM rows: the walker's plainer loop does the walk.
        numeric_only = not lightgbm_rows and not (nodes["feature"] & (CATEGORICAL | ZERO_MISSING)).any()
        self._arrays = (nodes, roots, columns, value, bitsets, baseline)  # kept alive for the addresses below
        self.n_trees = len(roots)
        self.n_features = n_features
        self.n_outputs = len(baseline)
        options = (int(float32_sums) * _FLOAT32_SUMS | int(lightgbm_rows) * LIGHTGBM_ROWS
                   | int(float32_rows) * _FLOAT32_ROWS | int(numeric_only) * _NUMERIC_ONLY)
        self._model = (nodes.ctypes.data, len(nodes), roots.ctypes.data, columns.ctypes.data, len(roots),
                       value.ctypes.data, bitsets.ctypes.data, len(bitsets), baseline.ctypes.data, self.n_outputs,
                       options, deepest_path(nodes, roots) if numeric_only else 0)
        # None until a batch asks for it, then the copy, or False where there is none (not numeric with
        # float32 rows, or too large).
        self._compact: PrivateCopy | bool | None = None if numeric_only and float32_rows else False
        self._compact_model = (nodes.ctypes.data, len(nodes), roots.ctypes.data, columns.ctypes.data, len(roots),
                               value.ctypes.data, baseline.ctypes.data, self.n_outputs, n_features, options)

    def output(self, rows: np.ndarray) -> np.ndarray:
        """The model's raw output, shape (rows, outputs), for C-contiguous float64 ``rows`` of ``n_features``.

        Raises ``NodesDamaged`` when the records changed since they were checked."""
        n_rows = len(rows)
        out = (ctypes.c_double * (n_rows * self.n_outputs))()
        functions = functions_for(n_rows * self.n_trees)
        compact = self._compact if n_rows >= COMPACT_FROM_ROWS and self._compact is not False else False
        if compact is None:
            compact = self._compact = PrivateCopy.make(RELEASING_GIL.compact_make, RELEASING_GIL.compact_free,
                                                        (*self._compact_model, COMPACT_MAX_BYTES)) or False
        if compact:
            status = functions.compact(compact.pointer, rows.tobytes(), n_rows, self.n_features, out)
        else:
            status = functions.boosted(*self._model, rows.tobytes(), n_rows, self.n_features, out)
        if status == _INFINITE_ROW:
            raise ValueError("Input data contains `inf` or a value too large for float32 (XGBoost refuses it)")
        if status == _NO_MEMORY:
            raise MemoryError(f"no memory for {n_rows} rows rounded to float32")
        raise_for(status)
        return np.frombuffer(out).reshape(n_rows, self.n_outputs)


class PrivateCopy:
    """A private copy of a model's trees that the C library made from its records, checked as it read them, and
    frees (with ``free``) when this goes."""

    def __init__(self, pointer: int, free: Callable[..., None]):
        self.pointer = pointer
        weakref.finalize(self, free, pointer)

    @classmethod
    def make(cls, make: Callable[..., int | None], free: Callable[..., None], arguments: tuple) -> PrivateCopy | None:
        """The copy ``make`` makes of a model (its arguments, the most bytes last), or None where it would take
        more. Raises ``NodesDamaged`` when the records changed since they were checked."""
        status = ctypes.c_int64()
        pointer = make(*arguments, ctypes.byref(status))
        if pointer:
            return cls(pointer, free)
        if status.value == _NO_MEMORY:
            raise MemoryError("no memory for a copy of the model's trees")
        raise_for(status.value)
        return None


_XGBOOST_LINKS = {"sigmoid": 1, "softmax": 2, "sigmoid_pair": 3}


def xgboost_link(kind: str, raw: np.ndarray) -> np.ndarray:
    """XGBoost's ``sigmoid`` (of each value) or ``softmax`` (of each row) of float32 margins, computed in
    float32 as XGBoost computes it; ``raw`` and the answer are float64 arrays of shape (rows, outputs).
    ``sigmoid_pair`` takes one margin per row and answers ``1 - p, p`` per row (a binary classifier's
    ``predict_proba``)."""
    margins = np.ascontiguousarray(raw, dtype=np.float64)
    if margins.ndim != 2:
        raise ValueError(f"no XGBoost link {kind!r} for an array of shape {margins.shape}")
    shape = (margins.shape[0], 2) if kind == "sigmoid_pair" else margins.shape
    # Passed as bytes and a ctypes array, as the walker's rows and output are: no ndarray.ctypes object made.
    out = (ctypes.c_double * (shape[0] * shape[1]))()
    functions = KEEPING_GIL if margins.size <= KEEPS_GIL_UP_TO_WALKS else RELEASING_GIL
    if functions.xgboost_link(_XGBOOST_LINKS[kind], margins.tobytes(), margins.shape[0], margins.shape[1], out):
        raise ValueError(f"no XGBoost link {kind!r} for an array of shape {margins.shape}")
    return np.frombuffer(out).reshape(shape)


_LIGHTGBM_LINKS = {"sigmoid": 1, "softmax": 2, "exp": 3}


def lightgbm_link(kind: str, raw: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """LightGBM's ``sigmoid`` (``1 / (1 + exp(-scale * x))`` of each value), ``softmax`` (of each row) or
    ``exp`` (of each value) of raw sums, computed in double precision with the C library's ``exp`` as
    LightGBM computes them; ``raw`` and the answer are float64 arrays of shape (rows, outputs)."""
    sums = np.ascontiguousarray(raw, dtype=np.float64)
    if sums.ndim != 2:
        raise ValueError(f"no LightGBM link {kind!r} for an array of shape {sums.shape}")
    # Passed as bytes and a ctypes array, as the walker's rows and output are: no ndarray.ctypes object made.
    out = (ctypes.c_double * sums.size)()
    functions = KEEPING_GIL if sums.size <= KEEPS_GIL_UP_TO_WALKS else RELEASING_GIL
    if functions.lightgbm_link(_LIGHTGBM_LINKS[kind], sums.tobytes(), sums.shape[0], sums.shape[1], float(scale), out):
        raise ValueError(f"no LightGBM link {kind!r}")
    return np.frombuffer(out).reshape(sums.shape)


def deepest_path(nodes: np.ndarray, roots: np.ndarray) -> int:
    """The most steps a walk from ``roots`` takes to a leaf of ``nodes`` (checked records: every child is after
    its node, a leaf's children are itself), found level by level."""
    children = nodes["child"]
    level, steps = np.unique(roots.astype(np.int64)), 0
    while True:
        inner = level[children[level, 0] != level]
        if not len(inner):
            return steps
        level, steps = np.unique(children[inner].ravel()), steps + 1


def raise_for(status: int) -> None:
    if status:
        raise NodesDamaged(f"{_DAMAGE.get(status, f'status {status}')}: the node records changed since they "
                           "were checked")


def check_nodes(nodes: np.ndarray, roots: np.ndarray, n_features: int) -> None:
    """Raise ``InvalidNodes`` unless every walk from ``roots`` stays inside ``nodes`` (``NODE`` or
    ``WIDE_NODE`` records) and ends on a leaf: each node tests a column below ``n_features``, and each
    child is a node after it, but at a leaf, whose two children are the leaf itself."""
    if nodes.dtype not in (NODE, WIDE_NODE) or nodes.ndim != 1 or not nodes.flags.c_contiguous:
        raise InvalidNodes(f"nodes are not a contiguous array of {NODE} or {WIDE_NODE}")
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
    flags = NAN_LEFT | CATEGORICAL | ZERO_MISSING if nodes.dtype == WIDE_NODE else NAN_LEFT
    if ((nodes["feature"] & ~flags) >= n_features).any():
        raise InvalidNodes(f"a node tests a column past the model's {n_features}")
    if ((roots < 0) | (roots >= len(nodes))).any():
        raise InvalidNodes("a root is outside the nodes")
