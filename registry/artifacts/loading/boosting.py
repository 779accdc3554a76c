"""Checks on a boosted model (scikit-learn's HistGradientBoosting and GradientBoosting), before it is served.

scikit-learn walks both kinds' trees in compiled code that trusts the file: a child past the nodes, a
column past the row or a categorical node whose bitset is not there is read all the same. So every
tree is checked here as the forest's are (children after their parent and inside the tree, columns
inside the model's width, bitsets inside their array), and the shape of the whole (trees per
iteration, the baseline, the loss) is what the model's own predict expects.
"""
from __future__ import annotations

import numpy as np
from sklearn.dummy import DummyClassifier, DummyRegressor
from sklearn.ensemble._hist_gradient_boosting.common import PREDICTOR_RECORD_DTYPE
from sklearn.ensemble._hist_gradient_boosting.predictor import TreePredictor
from sklearn.tree import DecisionTreeRegressor

from registry.artifacts.loading.allowed import LOSS_CLASSES
from registry.artifacts.loading.tree_nodes import check_tree
from registry.artifacts.supported_estimators import HISTOGRAM_BOOSTING
from registry.errors import InvalidArtifact, UnsafeArtifact

# Far beyond any booster worth serving from one worker (1,000 iterations of a ten-class model is 10,000).
MAX_BOOSTED_TREES = 100_000
_BROKEN = "artifact holds a boosted tree whose nodes point outside the tree, its features or its bitsets"


def boosted_tree_sizes(model) -> list[int]:
    """The node count of every tree of a boosted model, as every listing counts (a pickle's memo can
    list one tree many times)."""
    if isinstance(model, HISTOGRAM_BOOSTING):
        return [len(predictor.nodes) for iteration in model._predictors for predictor in iteration]
    return [int(tree.tree_.node_count) for tree in np.asarray(model.estimators_, dtype=object).ravel()]


def check_boosting(model, n_features: int) -> None:
    """Refuse a boosted model whose trees predict would walk out of, or whose parts are not the shape
    its own predict expects (UnsafeArtifact for the trees, InvalidArtifact for the rest)."""
    per_iteration = _trees_per_iteration(model)
    if isinstance(model, HISTOGRAM_BOOSTING):
        _check_histogram(model, n_features, per_iteration)
    else:
        _check_staged(model, n_features, per_iteration)
    loss = getattr(model, "_loss", None)
    if type(loss) not in LOSS_CLASSES or type(getattr(loss, "link", None)) not in LOSS_CLASSES:
        raise InvalidArtifact("artifact holds a boosted model without one of scikit-learn's losses")


def _trees_per_iteration(model) -> int:
    classes = getattr(model, "classes_", None)
    expected = 1 if classes is None or len(classes) <= 2 else len(classes)
    if model.n_trees_per_iteration_ != expected:
        raise InvalidArtifact(
            f"artifact holds a boosted model of {model.n_trees_per_iteration_!r} trees per iteration for "
            f"{expected} outputs: upload the model as it was fitted"
        )
    return expected


def _check_histogram(model, n_features: int, per_iteration: int) -> None:
    baseline = model._baseline_prediction
    if not (isinstance(baseline, np.ndarray) and baseline.dtype == np.float64 and baseline.shape == (1, per_iteration)):
        raise InvalidArtifact("artifact holds a HistGradientBoosting model whose baseline is not one value per output")
    categorical = model._bin_mapper.is_categorical_
    categorical = np.zeros(n_features, bool) if categorical is None else np.asarray(categorical)
    if categorical.dtype.kind not in "bu" or categorical.shape != (n_features,):
        raise InvalidArtifact(
            "artifact holds a HistGradientBoosting model whose categorical features are not one per column")
    if len(model._bin_mapper.bin_thresholds_) != n_features:
        raise InvalidArtifact("artifact holds a HistGradientBoosting model whose bins are not one set per column")
    if not model._predictors:
        raise InvalidArtifact("artifact holds a HistGradientBoosting model without trees")
    categorical = categorical.astype(bool)
    for iteration in model._predictors:
        if len(iteration) != per_iteration:
            raise InvalidArtifact("artifact holds a HistGradientBoosting iteration without one tree per output")
        for predictor in iteration:
            _check_predictor(predictor, n_features, categorical)


def _check_predictor(predictor, n_features: int, categorical: np.ndarray) -> None:
    if not isinstance(predictor, TreePredictor):
        raise UnsafeArtifact(_BROKEN)
    nodes, bitsets = predictor.nodes, predictor.raw_left_cat_bitsets
    if not (isinstance(nodes, np.ndarray) and nodes.dtype == PREDICTOR_RECORD_DTYPE and nodes.ndim == 1 and len(nodes)
            and isinstance(bitsets, np.ndarray) and bitsets.dtype == np.uint32 and bitsets.ndim == 2
            and bitsets.shape[1] == 8 and bitsets.flags.c_contiguous):
        raise UnsafeArtifact(_BROKEN)
    split = np.flatnonzero(nodes["is_leaf"] == 0)
    inner = nodes[split]
    features = inner["feature_idx"]
    is_categorical = inner["is_categorical"] != 0
    fine = (
        np.all((inner["left"] > split) & (inner["left"] < len(nodes)))
        and np.all((inner["right"] > split) & (inner["right"] < len(nodes)))
        and np.all((features >= 0) & (features < n_features))
        and np.all(inner["bitset_idx"][is_categorical] < len(bitsets))
        and np.all(categorical[features[is_categorical]])
    )
    if not fine:
        raise UnsafeArtifact(_BROKEN)


# The init_ a GradientBoosting fit makes with init=None (its loss's init_estimator), by class: the strategies it uses.
_FITTED_INIT = {DummyClassifier: ("prior",), DummyRegressor: ("mean", "quantile")}


def _check_staged(model, n_features: int, per_iteration: int) -> None:
    if model.init is not None and not (isinstance(model.init, str) and model.init == "zero"):
        raise InvalidArtifact(
            "artifact holds a GradientBoosting model with an init estimator of its own, which is not served: "
            "fit it with init=None (the default) or init='zero'"
        )
    strategy = getattr(model.init_, "strategy", None)
    fitted = getattr(model.init_, "_strategy", strategy)  # what a DummyClassifier's predict_proba reads
    default_init = (isinstance(strategy, str) and strategy in _FITTED_INIT.get(type(model.init_), ())
                    and isinstance(fitted, str) and fitted == strategy)
    if not (isinstance(model.init_, str) and model.init_ == "zero" or default_init):
        raise InvalidArtifact("artifact holds a GradientBoosting model whose init_ is not the one it was fitted with")
    stages = model.estimators_
    if not (isinstance(stages, np.ndarray) and stages.ndim == 2 and stages.shape[1] == per_iteration and len(stages)):
        raise InvalidArtifact("artifact holds a GradientBoosting model without one tree per output at every stage")
    for tree in stages.ravel():
        if type(tree) is not DecisionTreeRegressor:
            raise UnsafeArtifact(_BROKEN)
        check_tree(tree.tree_, n_features)
        if tree.tree_.n_outputs != 1 or tree.tree_.max_n_classes != 1:
            raise UnsafeArtifact(_BROKEN)
