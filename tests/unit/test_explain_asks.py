"""What a caller's ``explain`` value asks (registry.serving.explanations.explain_asked), which spaces each
served kind offers, and a process's reference means (registry.monitoring.explain_references): kept until
the registry changes, never a mean that cannot be the model's."""
from contextlib import nullcontext

import numpy as np
import pytest
from sklearn.ensemble import GradientBoostingRegressor, HistGradientBoostingRegressor, RandomForestRegressor
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.tree import DecisionTreeClassifier

from registry.artifacts.signature import Feature, Signature
from registry.changes import AliasDeleted, ModelChanged
from registry.errors import InvalidInput, NotExplainable
from registry.monitoring.explain_references import KEPT, ExplainReferences
from registry.serving.cache import ServableModel
from registry.serving.explanations import ExplainAsk, explain, explain_asked, offered_spaces, space_for
from registry.inference.predictors import predictor_for

RNG = np.random.default_rng(2)
X = RNG.normal(size=(120, 2))
Y = X[:, 0] - X[:, 1]
SIGNATURE = Signature((Feature("a", "float64"), Feature("b", "float64")))


def _servable(model, version=1) -> ServableModel:
    task = "classification" if hasattr(model, "classes_") else "regression"
    return ServableModel("m", version, "0" * 64, task, SIGNATURE, predictor_for(model))


@pytest.mark.parametrize("value, asked", [
    (None, None), (False, None), (True, ExplainAsk()), ({}, ExplainAsk()), ({"space": None}, ExplainAsk()),
    ({"space": "margin"}, ExplainAsk("margin")), ({"space": "probability"}, ExplainAsk("probability")),
    ({"space": "prediction"}, ExplainAsk("prediction")),
])
def test_true_false_and_a_named_space_are_read(value, asked):
    assert explain_asked(value) == asked


@pytest.mark.parametrize("value, fragment", [
    (1, "got 1"), (0, "got 0"), ("true", "got 'true'"), ([], "got a list"), ({"space": "logit"}, "got 'logit'"),
    ({"space": True}, "got true"), ({"other": 1}, "unexpected key(s) 'other'"),
    ({str(i): i for i in range(1000)}, "unexpected key(s) '0', '1', '2', '3', '4'"),
])
def test_anything_else_is_invalid_input_saying_what_to_send_in_a_short_message(value, fragment):
    with pytest.raises(InvalidInput) as raised:
        explain_asked(value)
    assert fragment in raised.value.detail and len(raised.value.detail) < 300
    assert "prediction, probability, margin" in raised.value.detail


@pytest.mark.parametrize("model, spaces", [
    (LinearRegression().fit(X, Y), ("prediction",)),
    (LogisticRegression().fit(X, Y > 0), ("margin",)),
    (DecisionTreeClassifier(max_depth=3).fit(X, Y > 0), ("probability",)),
    (RandomForestRegressor(3, max_depth=3).fit(X, Y), ("prediction",)),
    (GradientBoostingRegressor(n_estimators=3).fit(X, Y), ("prediction",)),
    (HistGradientBoostingRegressor(max_iter=3, loss="poisson").fit(X, np.exp(Y)), ("margin",)),
])
def test_each_kind_offers_the_one_space_it_is_exact_in_and_refuses_the_others(model, spaces):
    servable = _servable(model)
    assert offered_spaces(servable) == spaces
    assert space_for(servable, ExplainAsk(spaces[0])) == space_for(servable, None) == spaces[0]
    for other in {"prediction", "probability", "margin"} - set(spaces):
        with pytest.raises(NotExplainable) as raised:
            space_for(servable, ExplainAsk(other))
        assert raised.value.errors == {"spaces": list(spaces)}


def test_a_model_its_library_serves_offers_no_space():
    from sklearn.svm import SVR

    servable = _servable(SVR().fit(X, Y))
    assert offered_spaces(servable) == ()
    with pytest.raises(NotExplainable, match="not by a compiled form"):
        explain(servable, X[:2], ExplainAsk("prediction"))


def test_a_reference_that_does_not_fit_the_model_is_not_used():
    servable = _servable(LinearRegression().fit(X, Y))
    assert explain(servable, X[:2], reference=np.array([1.0, 2.0])).baseline == "reference"
    for wrong in (np.array([1.0]), np.array([1.0, 2.0, 3.0]), np.zeros((2, 2))):
        explained = explain(servable, X[:2], reference=wrong)
        assert explained.baseline == "zeros"


class _Reads(ExplainReferences):
    """Reference means from a dict, counting the reads."""

    def __init__(self, stored: dict):
        super().__init__(nullcontext)
        self.stored, self.reads = stored, 0

    def _read(self, name, number):
        self.reads += 1
        return self.stored.get((name, number))


def test_a_processes_means_are_read_once_until_the_models_change():
    linear = LinearRegression().fit(X, Y)
    means = _Reads({("m", 1): np.array([1.0, 2.0])})
    servable = _servable(linear)
    assert means(servable).tolist() == [1.0, 2.0] and means(servable).tolist() == [1.0, 2.0]
    assert means(_servable(linear, version=2)) is None and means(_servable(linear, version=2)) is None
    assert means.reads == 2
    means.apply([AliasDeleted("m", "production")])
    means(servable)
    assert means.reads == 2
    means.stored[("m", 1)] = np.array([3.0, 4.0])
    means.apply([ModelChanged("other")])
    assert means(servable).tolist() == [1.0, 2.0]
    means.apply([ModelChanged("m")])
    assert means(servable).tolist() == [3.0, 4.0]
    means.stored[("m", 1)] = None
    means.forget()
    assert means(servable) is None and means.reads == 4


def test_a_process_keeps_at_most_kept_means():
    means = _Reads({})
    linear = LinearRegression().fit(X, Y)
    for version in range(KEPT * 2):
        means(_servable(linear, version=version))
    assert len(means._means) <= KEPT
