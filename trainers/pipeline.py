"""One scikit-learn Pipeline per kind: impute (and scale) numbers, one-hot encode text, then fit.

Only SimpleImputer, StandardScaler, OneHotEncoder, ColumnTransformer and Pipeline wrap the
estimator, because those are the classes the registry's safe loader admits. The kinds ``xgboost``
and ``lightgbm`` are no pipeline: the library's own model on the numeric columns (``trainers.boosted``).
"""
from __future__ import annotations

import pandas as pd
from pandas.api import types as ptypes
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from registry.artifacts.supported_estimators import MODELS
from trainers import boosted
from trainers.errors import ConfigurationError

# The class trained for a (kind, task): the first the registry's table lists for it.
ESTIMATORS = {pair: cls for cls, pair in reversed(MODELS.items())}
DEFAULT_PARAMS = {
    "logistic": {"max_iter": 1000},
    "forest": {"n_estimators": 100},
    **boosted.DEFAULT_PARAMS,
}
SCALED_KINDS = frozenset({"linear", "logistic"})
MISSING_CATEGORY = "missing"


def estimator_params(kind: str, task: str, params: dict, seed: int) -> dict:
    """The kind's defaults, the seed as ``random_state`` where it applies, then user params."""
    estimator_class = _estimator_class(kind, task)
    accepted = estimator_class().get_params()
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise ConfigurationError(
            f"{estimator_class.__name__} has no parameter {', '.join(map(repr, unknown))}; "
            f"valid: {', '.join(sorted(accepted))}"
        )
    merged = dict(DEFAULT_PARAMS.get(kind, {}))
    if "random_state" in accepted:
        merged["random_state"] = seed
    merged.update(params)
    return merged


def build_pipeline(kind: str, task: str, features: pd.DataFrame, params: dict) -> Pipeline | boosted.BoostedModel:
    """An unfitted Pipeline(ColumnTransformer, estimator) for these feature columns (for ``xgboost`` and
    ``lightgbm``, the library's model of the numeric columns)."""
    if kind in boosted.KINDS:
        boosted.check_columns(kind, features)
        return boosted.BoostedModel(kind, task, params)
    estimator = _estimator_class(kind, task)(**params)
    preprocess = _preprocessor(features, scale=kind in SCALED_KINDS)
    return Pipeline([("preprocess", preprocess), ("model", estimator)])


def estimator_path(kind: str, task: str) -> str:
    """The final estimator's public class path, e.g. ``sklearn.ensemble.RandomForestRegressor`` (``xgboost.Booster``
    for the kind ``xgboost``: what the registry reads from its file)."""
    if kind in boosted.KINDS:
        return f"{kind}.Booster"
    estimator_class = _estimator_class(kind, task)
    package = ".".join(estimator_class.__module__.split(".")[:2])
    return f"{package}.{estimator_class.__name__}"


def numeric_columns(features: pd.DataFrame) -> list[str]:
    """Columns imputed as numbers (booleans as 0/1); every other column is a category."""
    return [name for name in features.columns if ptypes.is_numeric_dtype(features[name])]


def _estimator_class(kind: str, task: str) -> type:
    if kind in boosted.KINDS:
        return boosted.estimator_class(kind, task)
    try:
        return ESTIMATORS[(kind, task)]
    except KeyError:
        raise ConfigurationError(f"no {task} estimator for kind {kind!r}") from None


def _preprocessor(features: pd.DataFrame, scale: bool) -> ColumnTransformer:
    # Columns are chosen by position, not name: the registry hands an all-numeric batch to the
    # model as a plain float array, where names cannot select anything.
    numeric_names = set(numeric_columns(features))
    numeric = [i for i, name in enumerate(features.columns) if name in numeric_names]
    categorical = [i for i, name in enumerate(features.columns) if name not in numeric_names]
    numeric_steps = [("impute", SimpleImputer(strategy="median"))]
    if scale:
        numeric_steps.append(("scale", StandardScaler()))
    categorical_steps = [
        ("impute", SimpleImputer(strategy="constant", fill_value=MISSING_CATEGORY)),
        ("onehot", OneHotEncoder(handle_unknown="ignore")),
    ]
    transformers = []
    if numeric:
        transformers.append(("numeric", Pipeline(numeric_steps), numeric))
    if categorical:
        transformers.append(("categorical", Pipeline(categorical_steps), categorical))
    return ColumnTransformer(transformers)
