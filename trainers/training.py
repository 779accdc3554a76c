"""Fitting a pipeline and scoring it on held-out rows, or across K folds."""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.model_selection import KFold, StratifiedKFold, train_test_split
from sklearn.pipeline import Pipeline

from trainers import progress
from trainers.datasets import Dataset
from trainers.errors import TooFewRows, TrainingFailed, first_line
from trainers.metrics import evaluate
from trainers.pipeline import build_pipeline, estimator_params
from trainers.target import check_target, resolve_task, split_features

log = logging.getLogger(__name__)

MIN_EVALUATION_ROWS = 2  # r2 and friends need at least two rows on each side


@dataclass(frozen=True)
class TrainingSpec:
    """What to train: the kind, the target, the task (or ``auto``), hyperparameters, the split."""

    kind: str
    target: str
    task: str = "auto"
    params: dict = field(default_factory=dict)
    seed: int = 0
    test_size: float = 0.2
    cv: int | None = None


@dataclass(frozen=True)
class PreparedData:
    """Features and target checked against the task, with the estimator's final params."""

    features: pd.DataFrame
    y: pd.Series
    task: str
    params: dict


@dataclass(frozen=True)
class TrainedModel:
    """A fitted pipeline with its scores and the rows they were computed on."""

    pipeline: Pipeline  # or, for the kinds xgboost and lightgbm, a trainers.boosted.BoostedModel
    spec: TrainingSpec
    task: str
    params: dict
    metrics: dict[str, float]
    evaluation: dict
    test_features: pd.DataFrame  # held-out rows; all rows after cross-validation
    test_y: pd.Series
    metrics_sd: dict[str, float] | None = None


def prepare(dataset: Dataset, spec: TrainingSpec) -> PreparedData:
    """Separate and check the target, settle the task and the estimator params."""
    features, y = split_features(dataset.frame, spec.target, dataset.source)
    task = resolve_task(spec.kind, y, spec.task)
    check_target(y, task, spec.kind)
    params = estimator_params(spec.kind, task, spec.params, spec.seed)
    return PreparedData(features=features, y=y, task=task, params=params)


def train(dataset: Dataset, spec: TrainingSpec) -> TrainedModel:
    """Train as the spec says: on a held-out split, or cross-validated then refitted on all rows."""
    data = prepare(dataset, spec)
    if spec.cv:
        return train_cross_validated(data, spec)
    return train_holdout(data, spec)


def train_holdout(data: PreparedData, spec: TrainingSpec) -> TrainedModel:
    """Fit on a deterministic split (stratified for classification) and score the held-out rows."""
    check_holdout_size(data.y, data.task, spec.test_size)
    stratify = data.y if data.task == "classification" else None
    train_x, test_x, train_y, test_y = train_test_split(
        data.features, data.y, test_size=spec.test_size, random_state=spec.seed, stratify=stratify
    )
    unfitted = build_pipeline(spec.kind, data.task, data.features, data.params)
    pipeline = fit(unfitted, train_x, train_y)
    evaluation = {
        "method": "holdout", "test_size": spec.test_size, "seed": spec.seed,
        "train_rows": len(train_x), "test_rows": len(test_x),
    }
    return TrainedModel(
        pipeline=pipeline, spec=spec, task=data.task, params=data.params,
        metrics=evaluate(pipeline, test_x, test_y, data.task), evaluation=evaluation,
        test_features=test_x, test_y=test_y,
    )


def train_cross_validated(data: PreparedData, spec: TrainingSpec) -> TrainedModel:
    """Score K folds (mean and sd per metric), then fit the returned pipeline on every row."""
    check_fold_size(data.y, data.task, spec.cv)
    template = build_pipeline(spec.kind, data.task, data.features, data.params)
    fold_scores = []
    for train_index, test_index in progress.iterate(
        _folds(data.task, spec.cv, spec.seed).split(data.features, data.y), spec.cv, "folds"
    ):
        fitted = fit(clone(template), data.features.iloc[train_index], data.y.iloc[train_index])
        fold_scores.append(
            evaluate(fitted, data.features.iloc[test_index], data.y.iloc[test_index], data.task)
        )
    means, sds = _summarise(fold_scores)
    pipeline = fit(template, data.features, data.y)
    return TrainedModel(
        pipeline=pipeline, spec=spec, task=data.task, params=data.params, metrics=means,
        metrics_sd=sds, evaluation={"method": "cv", "folds": spec.cv, "seed": spec.seed},
        test_features=data.features, test_y=data.y,
    )


def fit(pipeline: Pipeline, features: pd.DataFrame, y: pd.Series) -> Pipeline:
    """Fit the pipeline, turning scikit-learn's refusals into a one-line TrainingFailed."""
    try:
        return pipeline.fit(features, y)
    except (ValueError, TypeError) as exc:
        model = type(pipeline.steps[-1][1] if hasattr(pipeline, "steps") else pipeline).__name__
        raise TrainingFailed(f"{model} could not be fitted: {first_line(exc)}") from exc


def check_holdout_size(y: pd.Series, task: str, test_size: float) -> None:
    """Refuse data too small to leave rows (and every class) on both sides of the split."""
    needed_per_side = MIN_EVALUATION_ROWS
    if task == "classification":
        _check_class_counts(y, MIN_EVALUATION_ROWS, "a stratified held-out split")
        needed_per_side = max(needed_per_side, y.nunique())
    rows = len(y)
    test_rows = math.ceil(rows * test_size)
    if min(test_rows, rows - test_rows) < needed_per_side:
        raise TooFewRows(
            f"{rows} rows are too few to hold out {test_size:.0%} for evaluation: the split leaves "
            f"{rows - test_rows} to train and {test_rows} to test, and each side needs at least "
            f"{needed_per_side}"
        )


def check_fold_size(y: pd.Series, task: str, folds: int) -> None:
    """Refuse data too small for K folds of two rows or more (stratified: K rows per class)."""
    if task == "classification":
        _check_class_counts(y, folds, f"{folds}-fold stratified cross-validation")
    if len(y) < folds * MIN_EVALUATION_ROWS:
        raise TooFewRows(
            f"{len(y)} rows are too few for {folds}-fold cross-validation; "
            f"need at least {folds * MIN_EVALUATION_ROWS}"
        )


def _check_class_counts(y: pd.Series, minimum: int, purpose: str) -> None:
    counts = y.value_counts()
    scarce = counts[counts < minimum]
    if not scarce.empty:
        label, count = scarce.index[0], int(scarce.iloc[0])
        raise TooFewRows(
            f"class {label!r} has {count} row{'s' if count != 1 else ''}; "
            f"{purpose} needs at least {minimum} per class"
        )


def _folds(task: str, folds: int, seed: int) -> KFold | StratifiedKFold:
    splitter = StratifiedKFold if task == "classification" else KFold
    return splitter(n_splits=folds, shuffle=True, random_state=seed)


def _summarise(fold_scores: list[dict[str, float]]) -> tuple[dict[str, float], dict[str, float]]:
    # A metric undefined on some fold (roc_auc without both classes) is left out, not averaged
    # over fewer folds.
    names = [name for name in fold_scores[0] if all(name in scores for scores in fold_scores)]
    means, sds = {}, {}
    for name in names:
        values = np.array([scores[name] for scores in fold_scores])
        means[name] = float(values.mean())
        sds[name] = float(values.std(ddof=1))
    return means, sds
