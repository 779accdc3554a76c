"""The kinds ``xgboost`` and ``lightgbm``: fitted through the library's scikit-learn estimator on the numeric
columns (each library sends a missing value down its own branch), and written as the library's own model file,
which the registry reads without running any code. A classifier learns the codes ``0 … k-1`` of the sorted
labels, which it names as its ``classes_``: the upload sends them, so the registry answers the labels."""
from __future__ import annotations

import importlib
import logging

import numpy as np
import pandas as pd
from pandas.api import types as ptypes
from sklearn.base import BaseEstimator

from trainers.errors import ConfigurationError

log = logging.getLogger(__name__)

KINDS = ("xgboost", "lightgbm")
# The estimator class per task, and the file names the registry recognises by content (the suffix says which).
_CLASSES = {
    "xgboost": {"regression": "XGBRegressor", "classification": "XGBClassifier"},
    "lightgbm": {"regression": "LGBMRegressor", "classification": "LGBMClassifier"},
}
SUFFIXES = {"xgboost": (".json", ".ubj"), "lightgbm": (".txt",)}
DEFAULT_PARAMS = {"xgboost": {"n_estimators": 100}, "lightgbm": {"n_estimators": 100, "verbose": -1}}


def estimator_class(kind: str, task: str) -> type:
    """The library's scikit-learn estimator of ``task``; a ConfigurationError naming the package when it is absent."""
    try:
        module = importlib.import_module(kind)
    except ImportError:
        raise ConfigurationError(f"kind {kind!r} needs the {kind} package, which is not installed here: "
                                 f"pip install {kind}") from None
    return getattr(module, _CLASSES[kind][task])


def check_columns(kind: str, features: pd.DataFrame) -> None:
    """Refuse text columns: these kinds take numbers (booleans as 0/1) and leave encoding to the caller."""
    text = [str(name) for name in features.columns
            if not ptypes.is_numeric_dtype(features[name]) and not ptypes.is_bool_dtype(features[name])]
    if text:
        raise ConfigurationError(f"kind {kind!r} trains on numeric columns only, and {', '.join(map(repr, text))} "
                                 "hold text: encode them as numbers, or use kind boosting (which one-hot encodes them)")


def check_output(kind: str, path) -> None:
    """The artifact of these kinds is the library's model file: its name must say which format."""
    if str(path).lower().endswith(SUFFIXES[kind]):
        return
    raise ConfigurationError(f"--out of kind {kind!r} is {kind}'s own model file: name it "
                             f"{' or '.join('*' + suffix for suffix in SUFFIXES[kind])}, not {path}")


class BoostedModel(BaseEstimator):
    """An XGBoost or LightGBM model of ``task`` fitted with ``params``, answering in the labels it was fitted on."""

    def __init__(self, kind: str = "xgboost", task: str = "regression", params: dict | None = None):
        self.kind = kind
        self.task = task
        self.params = params

    def fit(self, features: pd.DataFrame, y: pd.Series) -> BoostedModel:
        """Fit on the numeric ``features``; a classifier on the codes of the sorted labels."""
        check_columns(self.kind, features)
        target = np.asarray(y)
        if self.task == "classification":
            self.classes_, target = np.unique(target, return_inverse=True)
        self.estimator_ = estimator_class(self.kind, self.task)(**(self.params or {}))
        self.estimator_.fit(_numbers(features), target)
        # The names the file holds, which the registry's signature takes: LightGBM writes "a b" as "a_b".
        names = [str(name) for name in self.estimator_.feature_names_in_]
        renamed = [f"{str(given)!r} as {name!r}" for given, name in zip(features.columns, names) if str(given) != name]
        if renamed:
            log.warning("%s names %d column(s) otherwise in its file, and callers send them so: %s", self.kind,
                        len(renamed), ", ".join(renamed[:3]) + (", …" if len(renamed) > 3 else ""))
        self.feature_names_in_ = np.asarray(names, dtype=object)
        return self

    def predict(self, features: pd.DataFrame) -> np.ndarray:
        """The labels (classifier) or values (regressor) of ``features``."""
        answered = self.estimator_.predict(_numbers(features))
        return self.classes_[np.asarray(answered, dtype=np.intp)] if self.task == "classification" else answered

    def predict_proba(self, features: pd.DataFrame) -> np.ndarray:
        """Each class's probability, in ``classes_`` order."""
        return self.estimator_.predict_proba(_numbers(features))

    def model_file(self, suffix: str = "") -> bytes:
        """The library's own model file (XGBoost: JSON, or UBJSON for ``.ubj``; LightGBM: text)."""
        if self.kind == "xgboost":
            return bytes(self.estimator_.get_booster().save_raw("ubj" if suffix == ".ubj" else "json"))
        return self.estimator_.booster_.model_to_string().encode("utf-8")


def _numbers(features: pd.DataFrame) -> pd.DataFrame:
    """The columns as floats, named as strings (both libraries keep the names in the file)."""
    return features.astype(float).rename(columns=str)
