"""What a model says it takes (``n_features_in_``), checked against the arrays it holds.

A file states every width itself: a few hundred bytes can say three million features, and the
signature read from it would then be three million columns. So each width is bounded
(``MAX_FEATURES``) and must equal the width of the arrays that use it (a linear model's ``coef_``,
a tree's ``n_features``, a scaler's statistics, an encoder's categories), and in a Pipeline each
step must take what the step before gives where that can be read off the arrays. Every check
costs a few comparisons, made before anything grows with the width.
"""
from __future__ import annotations

import numbers

import numpy as np
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import (
    FunctionTransformer,
    MinMaxScaler,
    OneHotEncoder,
    OrdinalEncoder,
    RobustScaler,
    StandardScaler,
)

from registry.artifacts.loading.limits import DOCS
from registry.artifacts.supported_estimators import MODELS
from registry.errors import ArtifactTooLarge, InvalidArtifact

PASSTHROUGH = "passthrough"

# The fitted arrays whose length is the step's input width, by class (None where a setting left one out).
WIDTH_ARRAYS: dict[type, tuple[str, ...]] = {
    StandardScaler: ("mean_", "var_", "scale_"),
    MinMaxScaler: ("min_", "scale_", "data_min_", "data_max_", "data_range_"),
    RobustScaler: ("center_", "scale_"),
    SimpleImputer: ("statistics_",),
    OneHotEncoder: ("categories_",),
    OrdinalEncoder: ("categories_",),
}
# Steps that give as many columns as they take (a FunctionTransformer is only ever a passthrough).
SAME_WIDTH = (StandardScaler, MinMaxScaler, RobustScaler, OrdinalEncoder, FunctionTransformer)


def check_widths(estimator, max_features: int | None) -> None:
    """Refuse a model whose input width is past ``max_features`` (ArtifactTooLarge) or is not the
    width of its arrays, or of what the step before gives (InvalidArtifact)."""
    if max_features is not None:
        width = getattr(estimator, "n_features_in_", None)
        if isinstance(width, numbers.Integral) and width > max_features:
            raise ArtifactTooLarge(
                f"the model takes {width:,} features; at most {max_features:,} are accepted "
                f"(MAX_FEATURES, see {DOCS})"
            )
    _check_step(estimator, max_features)


def _check_step(step, max_features: int | None) -> None:
    if isinstance(step, str):
        return
    width = _declared_width(step, max_features)
    if isinstance(step, Pipeline):
        _check_pipeline(step, max_features)
    elif isinstance(step, ColumnTransformer):
        _check_column_transformer(step, width, max_features)
    elif type(step) in MODELS:
        _check_model(step, width)
    else:
        for name in WIDTH_ARRAYS.get(type(step), ()):
            array = getattr(step, name, None)
            if array is not None:
                _must_equal(step, width, len(array), f"{name} holds")


def _declared_width(step, max_features: int | None) -> int | None:
    """The step's ``n_features_in_`` (None when it has none), refused past the bound or below 1."""
    if isinstance(step, Pipeline) and isinstance(step.steps[0][1], str):
        return None
    width = getattr(step, "n_features_in_", None)
    if width is None:
        return None
    if not isinstance(width, numbers.Integral) or width < 1:
        raise InvalidArtifact(f"{type(step).__name__} says it takes {width!r} features (n_features_in_)")
    if max_features is not None and width > max_features:
        raise ArtifactTooLarge(
            f"a {type(step).__name__} inside the model takes {width:,} features; at most "
            f"{max_features:,} are accepted (MAX_FEATURES, see {DOCS})"
        )
    names = getattr(step, "feature_names_in_", None)
    if names is not None:
        _must_equal(step, width, len(names), "feature_names_in_ names")
    return int(width)


def _check_pipeline(pipeline: Pipeline, max_features: int | None) -> None:
    given = None
    for _, step in pipeline.steps:
        _check_step(step, max_features)
        if isinstance(step, str):
            continue
        taken = getattr(step, "n_features_in_", None)
        if given is not None and taken is not None:
            _must_equal(step, taken, given, "the step before gives")
        given = output_width(step)


def _check_column_transformer(transformer: ColumnTransformer, width: int | None, max_features: int | None) -> None:
    routed = getattr(transformer, "_transformer_to_input_indices", {})
    for name, inner, _ in transformer.transformers_:
        indices = np.asarray(routed.get(name, []))
        if width is not None and indices.size and not ((indices >= 0) & (indices < width)).all():
            raise InvalidArtifact(
                f"ColumnTransformer part {str(name)[:40]!r} reads columns outside the {width:,} features it takes"
            )
        _check_step(inner, max_features)
        taken = None if isinstance(inner, str) else getattr(inner, "n_features_in_", None)
        if taken is not None:
            _must_equal(inner, taken, indices.size, f"ColumnTransformer part {str(name)[:40]!r} is given")


def _check_model(model, width: int | None) -> None:
    kind = MODELS[type(model)][0]
    if kind in ("linear", "logistic"):
        coef = getattr(model, "coef_", None)
        if isinstance(coef, np.ndarray) and coef.ndim in (1, 2):
            _must_equal(model, width, coef.shape[-1], "coef_ is for")
    elif kind == "tree":
        _must_equal(model, width, int(model.tree_.n_features), "its tree_ is for")
    elif kind == "boosting":
        _check_boosted_width(model, width)
    else:
        for tree_model in model.estimators_:
            _must_equal(tree_model, int(tree_model.n_features_in_), width, "its forest takes")
            _must_equal(tree_model, width, int(tree_model.tree_.n_features), "its tree_ is for")


def _check_boosted_width(model, width: int | None) -> None:
    """A GradientBoosting model's stages, and a HistGradientBoosting model's own column check, take its width."""
    stages = getattr(model, "estimators_", None)
    if stages is not None:
        for tree_model in np.asarray(stages, dtype=object).ravel():
            _must_equal(model, width, int(tree_model.n_features_in_), "a stage of it takes")
            _must_equal(model, width, int(tree_model.tree_.n_features), "a stage's tree_ is for")
        return
    preprocessor = getattr(model, "_preprocessor", None)
    if preprocessor is not None:
        _check_step(preprocessor, None)
        _must_equal(model, width, preprocessor.n_features_in_, "its column check takes")
        _must_equal(model, width, output_width(preprocessor), "its column check gives")


def output_width(step) -> int | None:
    """How many columns a fitted preprocessing step gives, read off its arrays; None when unknown."""
    if isinstance(step, SAME_WIDTH):
        return getattr(step, "n_features_in_", None)
    if isinstance(step, SimpleImputer) and not step.add_indicator:
        statistics = np.asarray(step.statistics_)
        # A column never seen filled has a NaN statistic and is dropped (``statistics != statistics``
        # finds NaN in float and object arrays alike, as scikit-learn's own mask does).
        return len(statistics) if step.keep_empty_features else int(np.count_nonzero(statistics == statistics))
    if isinstance(step, OneHotEncoder):
        return int(sum(step._compute_n_features_outs()))
    if isinstance(step, Pipeline):
        last = [s for _, s in step.steps if not isinstance(s, str)]
        return output_width(last[-1]) if last else None
    if isinstance(step, ColumnTransformer):
        return _column_transformer_width(step)
    return None


def _column_transformer_width(transformer: ColumnTransformer) -> int | None:
    routed = getattr(transformer, "_transformer_to_input_indices", {})
    total = 0
    for name, inner, _ in transformer.transformers_:
        if inner == "drop":
            continue
        part = len(routed.get(name, [])) if inner == PASSTHROUGH else output_width(inner)
        if part is None:
            return None
        total += part
    return total


def _must_equal(step, declared, actual, what: str) -> None:
    if declared is not None and actual is not None and int(declared) != int(actual):
        raise InvalidArtifact(
            f"{type(step).__name__} says it takes {int(declared):,} features (n_features_in_) but {what} "
            f"{int(actual):,}: upload the model as it was fitted"
        )
