"""Measuring what a loaded model holds: its arrays once each, trees by their buffers, shared objects never."""
import numpy as np
import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from registry.serving.model_size import held_bytes
from registry.inference.predictors import predictor_for
from tests.helpers import classification_data


def test_an_array_counts_its_buffer_and_a_view_counts_its_owner_once():
    owner = np.zeros(1_000_000)  # 8 MB
    views = [owner[::2], owner[:10], owner.reshape(1000, 1000)]

    assert 8_000_000 <= held_bytes(owner) < 8_001_000
    assert held_bytes(owner, *views) - held_bytes(owner) < 1_000


def test_the_same_object_reached_twice_counts_once():
    array = np.ones(100_000)

    assert held_bytes([array, array, {"a": array}]) - held_bytes(array) < 1_000


def test_a_forest_is_measured_by_its_trees_buffers_and_grows_with_them():
    X, y = classification_data(n_rows=2_000)
    small = RandomForestClassifier(n_estimators=5, random_state=0).fit(X, y)
    large = RandomForestClassifier(n_estimators=50, random_state=0).fit(X, y)
    nodes = sum(tree.tree_.node_count for tree in large.estimators_)

    assert held_bytes(large) >= nodes * 64  # every node record is there …
    assert held_bytes(large) == pytest.approx(10 * held_bytes(small), rel=0.3)  # … and it scales with the trees


def test_the_compiled_predictor_is_counted_beside_the_estimator():
    X, y = classification_data(n_rows=2_000)
    forest = RandomForestClassifier(n_estimators=20, random_state=0).fit(X, y)
    predictor = predictor_for(forest)

    assert held_bytes(forest, predictor) > held_bytes(forest) + 20 * 64


def test_small_models_are_small_and_classes_or_functions_are_never_counted():
    X, y = classification_data()
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y)

    assert held_bytes(model) < 50_000


def test_a_two_class_logistic_regression_is_its_arrays_not_the_ufunc_it_computes_probabilities_with():
    X, y = classification_data()
    predictor = predictor_for(LogisticRegression().fit(X, y))

    arrays = predictor.coef.nbytes + predictor.intercept.nbytes + predictor.classes.nbytes
    assert arrays < held_bytes(predictor) < arrays + 2_000
