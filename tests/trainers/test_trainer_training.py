"""Training each kind on each task, on mixed dtypes, deterministically."""
from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from trainers.datasets import from_frame
from trainers.errors import ConfigurationError, TooFewRows, TrainingFailed
from trainers.metrics import METRICS
from trainers.pipeline import ESTIMATORS
from trainers.training import TrainingSpec, train

SAFE_PREPROCESSING = {SimpleImputer, StandardScaler, OneHotEncoder, ColumnTransformer, Pipeline}


def frame_for(task, regression_frame, binary_frame):
    if task == "regression":
        return regression_frame, "price"
    return binary_frame, "label"


def step_classes(estimator) -> set[type]:
    """Every class inside a fitted pipeline, nested transformers included."""
    classes = {type(estimator)}
    if isinstance(estimator, Pipeline):
        for _, step in estimator.steps:
            classes |= step_classes(step)
    if isinstance(estimator, ColumnTransformer):
        for _, transformer, _ in estimator.transformers_:
            if transformer != "drop":
                classes |= step_classes(transformer)
    return classes


def prediction_digest(pipeline, features: pd.DataFrame) -> str:
    """The predictions' digest, by value: text classes come back as an object array (pandas' pyarrow-backed
    strings make new str objects each time), whose bytes would be the objects' addresses."""
    return hashlib.sha256(repr(np.asarray(pipeline.predict(features)).tolist()).encode()).hexdigest()


@pytest.mark.parametrize(("kind", "task"), list(ESTIMATORS))
def test_each_kind_trains_on_each_task_it_supports_and_reports_that_tasks_metrics(
    kind, task, regression_frame, binary_frame
):
    frame, target = frame_for(task, regression_frame, binary_frame)
    trained = train(from_frame(frame), TrainingSpec(kind=kind, target=target, task=task))
    assert isinstance(trained.pipeline.steps[-1][1], ESTIMATORS[(kind, task)])
    assert set(trained.metrics) == set(METRICS[task])
    assert list(trained.pipeline.feature_names_in_) == ["size", "age", "colour"]


@pytest.mark.parametrize(("kind", "task"), list(ESTIMATORS))
def test_the_pipeline_holds_only_the_preprocessing_classes_the_safe_loader_admits(
    kind, task, regression_frame, binary_frame
):
    frame, target = frame_for(task, regression_frame, binary_frame)
    trained = train(from_frame(frame), TrainingSpec(kind=kind, target=target, task=task))
    assert step_classes(trained.pipeline) - SAFE_PREPROCESSING == {ESTIMATORS[(kind, task)]}


@pytest.mark.parametrize(("kind", "scaled"), [("linear", True), ("tree", False), ("forest", False)])
def test_numbers_are_scaled_only_for_linear_and_logistic_models(kind, scaled, regression_frame):
    trained = train(from_frame(regression_frame), TrainingSpec(kind=kind, target="price"))
    assert (StandardScaler in step_classes(trained.pipeline)) is scaled


@pytest.mark.parametrize("kind", ["linear", "forest"])
def test_a_trained_pipeline_takes_raw_rows_with_missing_numbers_and_unseen_categories(
    kind, regression_frame
):
    trained = train(from_frame(regression_frame), TrainingSpec(kind=kind, target="price"))
    rows = pd.DataFrame({"size": [np.nan, 12.0], "age": [30.0, np.nan], "colour": ["purple", None]})
    predictions = trained.pipeline.predict(rows)
    assert predictions.shape == (2,) and np.isfinite(predictions).all()


def test_an_all_numeric_pipeline_also_takes_a_plain_array_in_column_order(regression_frame):
    # The registry passes an all-numeric batch to the model as a float array, without names.
    frame = regression_frame.drop(columns="colour")
    trained = train(from_frame(frame), TrainingSpec(kind="linear", target="price"))
    features = frame.drop(columns="price").head(5)
    with pytest.warns(UserWarning, match="feature names"):
        from_array = trained.pipeline.predict(features.to_numpy())
    assert from_array == pytest.approx(trained.pipeline.predict(features))


def test_multiclass_classifiers_report_one_vs_rest_roc_auc_and_log_loss(multiclass_frame):
    trained = train(from_frame(multiclass_frame), TrainingSpec(kind="logistic", target="label"))
    assert 0.5 < trained.metrics["roc_auc"] <= 1.0
    assert trained.metrics["log_loss"] > 0
    assert set(trained.pipeline.classes_) == {"low", "mid", "high"}


@pytest.mark.parametrize("kind", ["tree", "forest"])
def test_same_data_and_seed_give_the_same_predictions(kind, binary_frame):
    spec = TrainingSpec(kind=kind, target="label", seed=7)
    first = train(from_frame(binary_frame), spec)
    second = train(from_frame(binary_frame.copy()), spec)
    features = binary_frame.drop(columns="label")
    assert prediction_digest(first.pipeline, features) == prediction_digest(second.pipeline, features)
    assert first.metrics == second.metrics


def test_the_held_out_split_is_stratified_for_classification(binary_frame):
    trained = train(from_frame(binary_frame), TrainingSpec(kind="tree", target="label"))
    held_out_share = trained.test_y.value_counts(normalize=True)
    overall_share = binary_frame["label"].value_counts(normalize=True)
    assert (held_out_share - overall_share).abs().max() < 0.05


def test_cross_validation_reports_mean_and_sd_and_fits_on_every_row(regression_frame):
    trained = train(from_frame(regression_frame), TrainingSpec(kind="linear", target="price", cv=4))
    assert set(trained.metrics) == set(trained.metrics_sd) == {"r2", "rmse", "mae"}
    assert trained.evaluation == {"method": "cv", "folds": 4, "seed": 0}
    assert len(trained.test_y) == len(regression_frame)


def test_user_params_override_the_defaults_and_the_seed_becomes_random_state(regression_frame):
    spec = TrainingSpec(kind="forest", target="price", params={"n_estimators": 5, "max_depth": None}, seed=3)
    trained = train(from_frame(regression_frame), spec)
    assert trained.params == {"n_estimators": 5, "max_depth": None, "random_state": 3}
    assert trained.pipeline.steps[-1][1].n_estimators == 5


def test_an_unknown_hyperparameter_is_refused_with_the_valid_names(regression_frame):
    with pytest.raises(ConfigurationError, match="no parameter 'depth'.*max_depth"):
        train(from_frame(regression_frame), TrainingSpec(kind="tree", target="price", params={"depth": 3}))


def test_an_out_of_range_hyperparameter_fails_training_with_scikit_learns_reason(regression_frame):
    spec = TrainingSpec(kind="tree", target="price", params={"max_depth": -1})
    with pytest.raises(TrainingFailed, match="max_depth"):
        train(from_frame(regression_frame), spec)


@pytest.mark.parametrize(
    ("target_values", "expected"),
    [
        (["a", "b"] * 10, "classification"),
        ([True, False] * 10, "classification"),
        ([0, 1, 2, 3] * 5, "classification"),
        ([float(i) * 1.5 for i in range(20)], "regression"),
        (list(range(100, 130)), "regression"),
    ],
)
def test_auto_task_reads_text_booleans_and_few_integers_as_classes(target_values, expected):
    frame = pd.DataFrame({"x": range(len(target_values)), "y": target_values})
    trained = train(from_frame(frame), TrainingSpec(kind="tree", target="y"))
    assert trained.task == expected


def test_an_explicit_task_overrides_inference(regression_frame):
    frame = regression_frame.assign(price=np.arange(80) % 4)
    trained = train(from_frame(frame), TrainingSpec(kind="forest", target="price", task="regression"))
    assert trained.task == "regression"


def test_a_kind_cannot_be_asked_for_a_task_it_does_not_do(binary_frame):
    with pytest.raises(ConfigurationError, match="kind 'linear' does not do classification"):
        train(from_frame(binary_frame), TrainingSpec(kind="linear", target="label", task="classification"))


def test_a_class_with_a_single_row_cannot_be_stratified(binary_frame):
    frame = binary_frame.copy()
    frame.loc[0, "label"] = "maybe"
    with pytest.raises(TooFewRows, match="class 'maybe' has 1 row"):
        train(from_frame(frame), TrainingSpec(kind="tree", target="label"))


def test_more_folds_than_rows_per_class_are_refused(binary_frame):
    frame = binary_frame.head(12)
    with pytest.raises(TooFewRows, match="cross-validation"):
        train(from_frame(frame), TrainingSpec(kind="tree", target="label", cv=10))


def test_rows_without_a_target_are_dropped_before_training(regression_frame):
    frame = regression_frame.copy()
    frame.loc[:9, "price"] = np.nan
    trained = train(from_frame(frame), TrainingSpec(kind="linear", target="price"))
    assert trained.evaluation["train_rows"] + trained.evaluation["test_rows"] == 70
