"""Metrics by task and the direction each one points."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.dummy import DummyClassifier, DummyRegressor
from sklearn.linear_model import LogisticRegression

from trainers.errors import ConfigurationError
from trainers.metrics import ALL_METRICS, check_metric, evaluate, higher_is_better, improvement


@pytest.mark.parametrize(
    ("metric", "higher"),
    [("r2", True), ("accuracy", True), ("f1_macro", True), ("roc_auc", True),
     ("rmse", False), ("mae", False), ("log_loss", False)],
)
def test_each_metric_knows_whether_higher_is_better(metric, higher):
    assert higher_is_better(metric) is higher


@pytest.mark.parametrize(
    ("metric", "candidate", "champion", "expected"),
    [("r2", 0.82, 0.80, 0.02), ("r2", 0.78, 0.80, -0.02),
     ("rmse", 9.0, 10.0, 1.0), ("rmse", 11.0, 10.0, -1.0), ("log_loss", 0.3, 0.5, 0.2)],
)
def test_improvement_is_positive_when_the_candidate_is_better_whichever_way_the_metric_points(
    metric, candidate, champion, expected
):
    assert improvement(metric, candidate, champion) == pytest.approx(expected)


def test_every_metric_has_a_direction():
    assert {name for name in ALL_METRICS if higher_is_better(name) in (True, False)} == set(ALL_METRICS)


def test_an_unknown_metric_is_refused():
    with pytest.raises(ConfigurationError, match="unknown metric 'auc'"):
        higher_is_better("auc")


@pytest.mark.parametrize(("metric", "task"), [("r2", "classification"), ("accuracy", "regression")])
def test_a_metric_of_the_other_task_is_refused(metric, task):
    with pytest.raises(ConfigurationError, match=f"{metric!r} does not apply to {task}"):
        check_metric(metric, task)


def test_a_perfect_regressor_scores_r2_one_and_zero_error():
    x = pd.DataFrame({"x": np.arange(10.0)})
    y = pd.Series(np.full(10, 4.0)).where(x["x"] < 100, 0)
    scores = evaluate(DummyRegressor(strategy="constant", constant=4.0).fit(x, y), x, y, "regression")
    assert scores["rmse"] == 0.0 and scores["mae"] == 0.0
    assert "r2" not in scores or scores["r2"] == 1.0


def test_binary_roc_auc_works_with_text_labels_and_a_better_model_has_lower_log_loss():
    rng = np.random.default_rng(0)
    x = pd.DataFrame({"x": rng.normal(size=200)})
    y = pd.Series(np.where(x["x"] + rng.normal(scale=0.3, size=200) > 0, "spam", "ham"))
    good = evaluate(LogisticRegression().fit(x, y), x, y, "classification")
    guess = evaluate(DummyClassifier(strategy="prior").fit(x, y), x, y, "classification")
    assert good["roc_auc"] > 0.9 and guess["roc_auc"] == pytest.approx(0.5)
    assert good["log_loss"] < guess["log_loss"]
    assert good["accuracy"] > guess["accuracy"]


def test_scores_that_are_undefined_on_the_rows_are_left_out():
    x = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0]})
    model = LogisticRegression().fit(x, ["a", "a", "b", "b"])
    scores = evaluate(model, x.head(2), pd.Series(["a", "a"]), "classification")
    assert "roc_auc" not in scores
    assert scores["accuracy"] == 1.0
