"""Checks on what a model file built, shared by the pickle and skops readers."""
from __future__ import annotations

import functools

import numpy as np
import sklearn
from sklearn.base import BaseEstimator
from sklearn.pipeline import Pipeline

from registry.artifacts.loading.allowed import (
    BIT_GENERATORS,
    CHECK_ARRAY,
    CYTHON_RESTORERS,
    RANDOM_CONSTRUCTORS,
)
from registry.artifacts.loading.boosting import MAX_BOOSTED_TREES, boosted_tree_sizes, check_boosting
from registry.artifacts.loading.limits import DOCS, MIB
from registry.artifacts.loading.tree_nodes import check_tree
from registry.artifacts.supported_estimators import MODELS
from registry.errors import ArtifactTooLarge, InvalidArtifact, UnsafeArtifact

# Far beyond any forest worth serving from one worker (scikit-learn's default is 100 trees).
MAX_TREES = 5_000
# What one node costs once compiled for prediction (registry/inference/tree_walk.py: threshold, feature and
# two children), before its values (8 bytes per class or output).
COMPILED_NODE_BYTES = 4 + 4 + 4 + 4
# A boosted tree's node once compiled (tree_walk.WIDE_NODE: float64 threshold, column, bitset, two children),
# before its value (8 bytes).
COMPILED_WIDE_NODE_BYTES = 8 + 4 + 4 + 4 + 4


def check_sklearn_version(version) -> str:
    """The scikit-learn version a file was written with, refused unless it is the running one."""
    running = sklearn.__version__
    if version != running:
        made_with = version if isinstance(version, str) else "an unknown version"
        raise InvalidArtifact(
            f"artifact was made with scikit-learn {made_with}; this server runs {running}: "
            f"retrain with {running}"
        )
    return version


def check_passthrough(state) -> None:
    """A FunctionTransformer is accepted only as ColumnTransformer's 'passthrough' (no function), or as
    the check of a HistGradientBoosting model's numeric columns (``partial(check_array, ...)``)."""
    holds_functions = not isinstance(state, dict) or state.get("inverse_func") is not None or not (
        state.get("func") is None or _is_numeric_check(state.get("func"))
    )
    if holds_functions:
        raise UnsafeArtifact(
            "artifact holds a FunctionTransformer with a function, which cannot be loaded safely; "
            "only ColumnTransformer's 'passthrough' is accepted"
        )


# The keywords HistGradientBoosting gives check_array for its numeric columns.
_NUMERIC_CHECK_KEYWORDS = frozenset({"dtype", "ensure_all_finite"})


def _is_numeric_check(func) -> bool:
    return (isinstance(func, functools.partial) and func.func is CHECK_ARRAY and not func.args
            and set(func.keywords) <= _NUMERIC_CHECK_KEYWORDS)


def check_partial_state(state) -> None:
    """A ``functools.partial`` is restored only as ``partial(check_array, dtype=..., ensure_all_finite=...)``."""
    if not (isinstance(state, tuple) and len(state) == 4 and state[0] is CHECK_ARRAY and state[1] == ()
            and isinstance(state[2], dict) and set(state[2]) <= _NUMERIC_CHECK_KEYWORDS and not state[3]):
        raise UnsafeArtifact(
            "artifact holds a functools.partial other than HistGradientBoosting's check of its numeric "
            "columns, which cannot be loaded safely"
        )


def check_constructor_call(func, args) -> None:
    """The calls a boosted model's pickle makes besides building classes, each only as NumPy, Cython and
    functools make them: a random generator from its bit generator, a compiled object's fields restored
    into its own class, a partial of check_array."""
    name = (getattr(func, "__module__", None), getattr(func, "__name__", None))
    if func is functools.partial:
        allowed = args == (CHECK_ARRAY,)
    elif name in RANDOM_CONSTRUCTORS:
        if name[1] == "__bit_generator_ctor":
            names = {cls.__name__ for cls in BIT_GENERATORS}
            allowed = len(args) == 1 and (args[0] in BIT_GENERATORS or isinstance(args[0], str) and args[0] in names)
        else:
            allowed = len(args) == 1 and type(args[0]) in BIT_GENERATORS
    elif name in CYTHON_RESTORERS:
        allowed = len(args) == 3 and args[0] is CYTHON_RESTORERS[name]
    else:
        return
    if not allowed:
        raise UnsafeArtifact(f"artifact calls {name[0]}.{name[1]} in a way a model file never does")


def check_top_level(obj) -> None:
    """The file must hold an estimator itself, not a container of one."""
    if not isinstance(obj, BaseEstimator):
        raise InvalidArtifact(
            f"artifact holds a {type(obj).__name__}, not a scikit-learn estimator: "
            "dump the fitted model itself with joblib.dump(model, path)"
        )


def check_parameters(estimator: BaseEstimator) -> None:
    """Every estimator reached through the parameters (a Pipeline's steps, a ColumnTransformer's transformers) holds
    each parameter its class declares: scikit-learn's own calls (``get_params``, its tags, ``check_is_fitted``) read
    them, and a file can leave one out."""
    try:
        estimator.get_params(deep=True)
    except AttributeError as error:
        raise InvalidArtifact(f"artifact holds an estimator without one of its parameters ({error}): upload the "
                              "file written by joblib.dump(model, path)") from None


def check_expanded_size(estimator: BaseEstimator, max_bytes: int) -> None:
    """Refuse a tree model that would grow past ``max_bytes`` once loaded and compiled, before anything grows.

    A pickle can list one tree object any number of times at almost no cost in the file (its memo);
    serving compiles every listed tree, so each listing counts in full.
    """
    model = estimator.steps[-1][1] if isinstance(estimator, Pipeline) else estimator
    kind = MODELS.get(type(model), (None,))[0]
    if kind == "boosting":
        _check_boosted_size(model, max_bytes)
        return
    if kind not in ("tree", "forest"):
        return
    trees = [model] if kind == "tree" else list(model.estimators_)
    if len(trees) > MAX_TREES:
        raise ArtifactTooLarge(
            f"artifact holds a forest of {len(trees):,} trees; at most {MAX_TREES:,} are served (see {DOCS})"
        )
    nodes = sum(int(tree.tree_.node_count) for tree in trees)
    values = sum(int(np.prod(tree.tree_.value.shape[1:])) * int(tree.tree_.node_count) for tree in trees)
    expanded = nodes * COMPILED_NODE_BYTES + values * 8
    if expanded > max_bytes:
        raise ArtifactTooLarge(
            f"artifact holds {len(trees):,} trees with {nodes:,} nodes in all, {expanded / MIB:,.0f} MB once loaded "
            f"and compiled; the limit is {max_bytes / MIB:,.0f} MB (MAX_MODEL_MB, see {DOCS})"
        )


def _check_boosted_size(model, max_bytes: int) -> None:
    sizes = boosted_tree_sizes(model)
    if len(sizes) > MAX_BOOSTED_TREES:
        raise ArtifactTooLarge(
            f"artifact holds a boosted model of {len(sizes):,} trees; at most {MAX_BOOSTED_TREES:,} are served "
            f"(see {DOCS})"
        )
    nodes = sum(sizes)
    expanded = nodes * (COMPILED_WIDE_NODE_BYTES + 8)
    if expanded > max_bytes:
        raise ArtifactTooLarge(
            f"artifact holds {len(sizes):,} trees with {nodes:,} nodes in all, {expanded / MIB:,.0f} MB once loaded "
            f"and compiled; the limit is {max_bytes / MIB:,.0f} MB (MAX_MODEL_MB, see {DOCS})"
        )


def check_trees(estimator: BaseEstimator) -> None:
    """Refuse trees whose nodes would make predict read outside its arrays or loop forever.

    scikit-learn walks tree nodes in compiled code without bounds checks and trusts the file.
    """
    model = estimator.steps[-1][1] if isinstance(estimator, Pipeline) else estimator
    kind = MODELS.get(type(model), (None,))[0]
    if kind == "tree":
        check_tree(model.tree_, int(model.n_features_in_))
    elif kind == "forest":
        for tree_model in model.estimators_:
            check_tree(tree_model.tree_, int(model.n_features_in_))
    elif kind == "boosting":
        check_boosting(model, int(model.n_features_in_))
