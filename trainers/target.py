"""The target column: separating it from the features, choosing the task, checking it fits."""
from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from pandas.api import types as ptypes

from registry.artifacts.supported_estimators import MODELS
from trainers import boosted
from trainers.errors import ConfigurationError, InvalidTarget, MissingTarget, UnreadableData

log = logging.getLogger(__name__)

TASKS = ("regression", "classification")
# What each kind can learn, read from the registry's table of accepted classes.
KIND_TASKS = {
    **{kind: tuple(task for task in TASKS if (kind, task) in MODELS.values()) for kind, _ in MODELS.values()},
    **{kind: TASKS for kind in boosted.KINDS},  # the libraries' own models, when installed
}
# An integer-valued numeric target with at most this many distinct values is read as classes.
MAX_CLASSES_FOR_AUTO = 20


def split_features(frame: pd.DataFrame, target: str, source: str) -> tuple[pd.DataFrame, pd.Series]:
    """Return (features, target), dropping rows whose target is missing."""
    if target not in frame.columns:
        columns = ", ".join(map(str, frame.columns))
        raise MissingTarget(f"target column {target!r} is not in {source} (columns: {columns})")
    unlabeled = frame[target].isna()
    if unlabeled.any():
        log.warning("dropping %d rows without a value in %r", int(unlabeled.sum()), target)
        frame = frame.loc[~unlabeled]
    if frame.empty:
        raise UnreadableData(f"{source} has no rows with a value in {target!r}")
    features = frame.drop(columns=[target])
    if features.shape[1] == 0:
        raise UnreadableData(f"{source} has no feature columns besides the target {target!r}")
    return features, frame[target]


def resolve_task(kind: str, y: pd.Series, requested: str = "auto") -> str:
    """The task to train for: as requested, the kind's only one, or inferred from the target."""
    if kind not in KIND_TASKS:
        raise ConfigurationError(f"unknown kind {kind!r}; choose one of {', '.join(KIND_TASKS)}")
    supported = KIND_TASKS[kind]
    if requested != "auto":
        if requested not in supported:
            raise ConfigurationError(
                f"kind {kind!r} does not do {requested}; it does {supported[0]}"
            )
        return requested
    if len(supported) == 1:
        return supported[0]
    task = infer_task(y)
    log.info("task: %s (inferred from the target; --task overrides)", task)
    return task


def infer_task(y: pd.Series) -> str:
    """Classification for text, booleans or a few integer values; regression otherwise."""
    if not ptypes.is_numeric_dtype(y) or ptypes.is_bool_dtype(y):
        return "classification"
    values = y.to_numpy(dtype=float)
    few_integers = np.all(values == np.round(values)) and y.nunique() <= MAX_CLASSES_FOR_AUTO
    return "classification" if few_integers else "regression"


def check_target(y: pd.Series, task: str, kind: str) -> None:
    """Refuse a target the task cannot learn: text for regression, fewer than two classes."""
    if task == "regression":
        if not ptypes.is_numeric_dtype(y) or ptypes.is_bool_dtype(y):
            sample = y.iloc[0]
            raise InvalidTarget(
                f"target {y.name!r} must be numeric for regression (kind {kind}); found {sample!r}"
            )
        return
    classes = y.unique()
    if len(classes) < 2:
        raise InvalidTarget(
            f"target {y.name!r} has a single class ({classes[0]!r}); "
            "classification needs two or more"
        )
