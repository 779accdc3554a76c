"""Checks on what a model file built, shared by the pickle and skops readers."""
from __future__ import annotations

import numpy as np
import sklearn
from sklearn.base import BaseEstimator
from sklearn.pipeline import Pipeline
from sklearn.tree._tree import TREE_LEAF, Tree

from registry.artifacts.loading.limits import DOCS, MIB
from registry.artifacts.supported_estimators import MODELS
from registry.errors import ArtifactTooLarge, InvalidArtifact, UnsafeArtifact

# Far beyond any forest worth serving from one worker (scikit-learn's default is 100 trees).
MAX_TREES = 5_000
# What one node costs once compiled for prediction (registry/serving/tree_walk.py: threshold, feature and
# two children), before its values (8 bytes per class or output).
COMPILED_NODE_BYTES = 4 + 4 + 4 + 4


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
    """A FunctionTransformer is accepted only as ColumnTransformer's 'passthrough' (no function)."""
    holds_functions = not isinstance(state, dict) or any(
        state.get(key) is not None for key in ("func", "inverse_func")
    )
    if holds_functions:
        raise UnsafeArtifact(
            "artifact holds a FunctionTransformer with a function, which cannot be loaded safely; "
            "only ColumnTransformer's 'passthrough' is accepted"
        )


def check_top_level(obj) -> None:
    """The file must hold an estimator itself, not a container of one."""
    if not isinstance(obj, BaseEstimator):
        raise InvalidArtifact(
            f"artifact holds a {type(obj).__name__}, not a scikit-learn estimator: "
            "dump the fitted model itself with joblib.dump(model, path)"
        )


def check_expanded_size(estimator: BaseEstimator, max_bytes: int) -> None:
    """Refuse a tree model that would grow past ``max_bytes`` once loaded and compiled, before anything grows.

    A pickle can list one tree object any number of times at almost no cost in the file (its memo);
    serving compiles every listed tree, so each listing counts in full.
    """
    model = estimator.steps[-1][1] if isinstance(estimator, Pipeline) else estimator
    kind = MODELS.get(type(model), (None,))[0]
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


def check_trees(estimator: BaseEstimator) -> None:
    """Refuse trees whose nodes would make predict read outside its arrays or loop forever.

    scikit-learn walks tree nodes in compiled code without bounds checks and trusts the file.
    """
    model = estimator.steps[-1][1] if isinstance(estimator, Pipeline) else estimator
    kind = MODELS.get(type(model), (None,))[0]
    if kind == "tree":
        _check_tree(model.tree_, int(model.n_features_in_))
    elif kind == "forest":
        for tree_model in model.estimators_:
            _check_tree(tree_model.tree_, int(model.n_features_in_))


_BROKEN_TREE = "artifact holds a decision tree whose nodes point outside the tree or its features"


def _check_tree(tree, n_features: int) -> None:
    # Every node predict can reach is checked once the root is counted and children come later.
    if not isinstance(tree, Tree) or not 0 < tree.node_count <= tree.capacity:
        raise UnsafeArtifact(_BROKEN_TREE)
    nodes = np.arange(tree.node_count)
    split = tree.children_left != TREE_LEAF
    parents = nodes[split]
    children_after_parent = all(
        np.all((children[split] > parents) & (children[split] < tree.node_count))
        for children in (tree.children_left, tree.children_right)
    )
    features = tree.feature[split]
    if not (children_after_parent and np.all((features >= 0) & (features < n_features))):
        raise UnsafeArtifact(_BROKEN_TREE)
