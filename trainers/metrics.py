"""Scores by task, and which way each one points."""
from __future__ import annotations

import math
import warnings
from contextlib import suppress

import numpy as np
import pandas as pd
from sklearn import metrics as skm
from sklearn.exceptions import UndefinedMetricWarning

from trainers.errors import ConfigurationError

METRICS = {
    "regression": ("r2", "rmse", "mae"),
    "classification": ("accuracy", "f1_macro", "roc_auc", "log_loss"),
}
LOWER_IS_BETTER = frozenset({"rmse", "mae", "log_loss"})
DEFAULT_METRIC = {"regression": "r2", "classification": "accuracy"}
ALL_METRICS = tuple(name for names in METRICS.values() for name in names)


def higher_is_better(metric: str) -> bool:
    """True for scores such as r2 and accuracy; False for errors and losses."""
    if metric not in ALL_METRICS:
        raise ConfigurationError(
            f"unknown metric {metric!r}; choose one of {', '.join(ALL_METRICS)}"
        )
    return metric not in LOWER_IS_BETTER


def improvement(metric: str, candidate: float, champion: float) -> float:
    """How much better the candidate is, positive when better whichever way the metric points."""
    difference = candidate - champion
    return difference if higher_is_better(metric) else -difference


def check_metric(metric: str, task: str) -> None:
    """Refuse a metric that does not apply to the task (r2 for a classifier, say)."""
    higher_is_better(metric)
    if metric not in METRICS[task]:
        raise ConfigurationError(
            f"metric {metric!r} does not apply to {task}; choose one of {', '.join(METRICS[task])}"
        )


def evaluate(estimator, features: pd.DataFrame, y: pd.Series, task: str) -> dict[str, float]:
    """Every metric of the task that is defined on these rows, as plain finite floats."""
    predicted = estimator.predict(features)
    with warnings.catch_warnings():
        # An undefined score comes back as NaN, which is left out below; no need to warn too.
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        scores = _scores(estimator, features, y, predicted, task)
    return {name: float(value) for name, value in scores.items() if math.isfinite(value)}


def _scores(estimator, features: pd.DataFrame, y: pd.Series, predicted, task: str) -> dict:
    if task == "regression":
        return {
            "r2": skm.r2_score(y, predicted),
            "rmse": skm.root_mean_squared_error(y, predicted),
            "mae": skm.mean_absolute_error(y, predicted),
        }
    return {
        "accuracy": skm.accuracy_score(y, predicted),
        "f1_macro": skm.f1_score(y, predicted, average="macro", zero_division=0),
        **_probability_scores(estimator, features, y),
    }


def _probability_scores(estimator, features: pd.DataFrame, y: pd.Series) -> dict[str, float]:
    # roc_auc and log_loss are undefined when the rows lack a class or hold one the model never
    # saw (a champion trained on older data); such a score is left out rather than guessed.
    classes = estimator.classes_
    probabilities = estimator.predict_proba(features)
    scores = {}
    if pd.Series(y).nunique() >= 2:
        with suppress(ValueError):
            scores["roc_auc"] = _roc_auc(y, probabilities, classes)
    with suppress(ValueError):
        scores["log_loss"] = skm.log_loss(y, probabilities, labels=classes)
    return scores


def _roc_auc(y: pd.Series, probabilities: np.ndarray, classes: np.ndarray) -> float:
    if len(classes) == 2:
        return skm.roc_auc_score(np.asarray(y) == classes[1], probabilities[:, 1])
    return skm.roc_auc_score(y, probabilities, multi_class="ovr", labels=classes)
