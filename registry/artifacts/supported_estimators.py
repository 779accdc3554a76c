"""Accepted scikit-learn classes: the models by kind and task, and the steps that may precede them.

Safe loading admits exactly these classes and introspection describes exactly these, so both read
this one table.
"""
from __future__ import annotations

from itertools import takewhile

from sklearn.compose import ColumnTransformer
from sklearn.ensemble import (
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.impute import SimpleImputer
from sklearn.linear_model import ElasticNet, Lasso, LinearRegression, LogisticRegression, Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import (
    MinMaxScaler,
    OneHotEncoder,
    OrdinalEncoder,
    RobustScaler,
    StandardScaler,
)
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

MODELS: dict[type, tuple[str, str]] = {
    LinearRegression: ("linear", "regression"),
    Ridge: ("linear", "regression"),
    Lasso: ("linear", "regression"),
    ElasticNet: ("linear", "regression"),
    LogisticRegression: ("logistic", "classification"),
    DecisionTreeRegressor: ("tree", "regression"),
    DecisionTreeClassifier: ("tree", "classification"),
    RandomForestRegressor: ("forest", "regression"),
    RandomForestClassifier: ("forest", "classification"),
    HistGradientBoostingRegressor: ("boosting", "regression"),
    HistGradientBoostingClassifier: ("boosting", "classification"),
    GradientBoostingRegressor: ("boosting", "regression"),
    GradientBoostingClassifier: ("boosting", "classification"),
}

# The boosted kinds whose trees are scikit-learn's own Tree (each stage a DecisionTreeRegressor).
STAGED_BOOSTING: tuple[type, ...] = (GradientBoostingRegressor, GradientBoostingClassifier)
# The boosted kinds whose trees are histogram predictors (node records and categorical bitsets).
HISTOGRAM_BOOSTING: tuple[type, ...] = (HistGradientBoostingRegressor, HistGradientBoostingClassifier)

ENCODERS: tuple[type, ...] = (OneHotEncoder, OrdinalEncoder)

# What may come before the model in a Pipeline (or inside a ColumnTransformer).
PREPROCESSORS: tuple[type, ...] = (
    Pipeline,
    ColumnTransformer,
    StandardScaler,
    MinMaxScaler,
    RobustScaler,
    *ENCODERS,
    SimpleImputer,
)


def class_path(cls: type) -> str:
    """The public dotted path of a class, e.g. ``sklearn.ensemble.RandomForestRegressor``."""
    public_modules = takewhile(lambda part: not part.startswith("_"), cls.__module__.split("."))
    return ".".join([*public_modules, cls.__qualname__])


def accepted_models() -> str:
    """The accepted kinds and their classes, worded for an error detail."""
    by_kind: dict[str, list[str]] = {}
    for cls, (kind, _) in MODELS.items():
        by_kind.setdefault(kind, []).append(cls.__name__)
    return "; ".join(f"{kind}: {', '.join(names)}" for kind, names in by_kind.items())


def accepted_steps() -> str:
    """The classes accepted before the model in a Pipeline, worded for an error detail."""
    return ", ".join(cls.__name__ for cls in PREPROCESSORS)
