"""Introspection tells what a fitted model is and what it takes, and refuses what is not supported."""
import importlib

import numpy as np
import pandas as pd
import pytest
from sklearn.decomposition import PCA
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.neighbors import KNeighborsRegressor
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler
from sklearn.svm import SVC
from sklearn.tree import DecisionTreeClassifier

from registry.artifacts.introspect import describe
from registry.artifacts.signature import Feature
from registry.artifacts.supported_estimators import MODELS, PREPROCESSORS, class_path
from registry.errors import InvalidArtifact

PUBLIC_PATHS = {
    "LinearRegression": "sklearn.linear_model.LinearRegression",
    "Ridge": "sklearn.linear_model.Ridge",
    "Lasso": "sklearn.linear_model.Lasso",
    "ElasticNet": "sklearn.linear_model.ElasticNet",
    "LogisticRegression": "sklearn.linear_model.LogisticRegression",
    "DecisionTreeRegressor": "sklearn.tree.DecisionTreeRegressor",
    "DecisionTreeClassifier": "sklearn.tree.DecisionTreeClassifier",
    "RandomForestRegressor": "sklearn.ensemble.RandomForestRegressor",
    "RandomForestClassifier": "sklearn.ensemble.RandomForestClassifier",
    "HistGradientBoostingRegressor": "sklearn.ensemble.HistGradientBoostingRegressor",
    "HistGradientBoostingClassifier": "sklearn.ensemble.HistGradientBoostingClassifier",
    "GradientBoostingRegressor": "sklearn.ensemble.GradientBoostingRegressor",
    "GradientBoostingClassifier": "sklearn.ensemble.GradientBoostingClassifier",
}


def test_kind_task_and_class_path_come_from_the_final_estimator(model_case):
    description = describe(model_case.model)

    assert (description.kind, description.task) == (model_case.kind, model_case.task)
    assert description.estimator == PUBLIC_PATHS[model_case.model_class.__name__]


def test_a_bare_model_has_no_steps_and_numbered_float_features(bare_case):
    description = describe(bare_case.model)

    assert description.steps is None
    assert description.signature.features == tuple(Feature(f"x{i}", "float64") for i in range(3))


def test_a_pipeline_lists_its_steps_and_types_its_string_column_as_object(pipeline_case):
    description = describe(pipeline_case.model)

    assert description.steps == [
        "sklearn.compose.ColumnTransformer",
        PUBLIC_PATHS[pipeline_case.model_class.__name__],
    ]
    assert description.signature.features == (
        Feature("size", "float64"),
        Feature("age", "float64"),
        Feature("colour", "object"),
    )


def test_classes_are_plain_values_for_classifiers_and_none_for_regressors(model_case):
    classes = describe(model_case.model).signature.classes

    if model_case.task == "regression":
        assert classes is None
    elif model_case.pipeline:
        assert classes == ("no", "yes")
    else:
        assert classes == (0, 1)
        assert all(type(value) is int for value in classes)


def test_boolean_classes_stay_booleans(numeric_data):
    X, _, y_class = numeric_data

    classes = describe(LogisticRegression().fit(X, y_class.astype(bool))).signature.classes

    assert classes == (False, True)
    assert all(type(value) is bool for value in classes)


def test_the_scikit_learn_version_is_carried_through(model_case):
    assert describe(model_case.model, sklearn_version="1.9.1").sklearn_version == "1.9.1"


def test_every_public_class_path_names_the_class_itself():
    for cls in (*MODELS, *PREPROCESSORS):
        module, _, name = class_path(cls).rpartition(".")
        assert getattr(importlib.import_module(module), name) is cls


def test_numeric_categories_stay_float64(numeric_data):
    X, y, _ = numeric_data
    frame = pd.DataFrame({"rooms": np.arange(len(X)) % 4 + 1.0, "area": X[:, 0]})
    model = make_pipeline(OrdinalEncoder(), LinearRegression()).fit(frame, y)

    features = describe(model).signature.features

    assert features == (Feature("rooms", "float64"), Feature("area", "float64"))


def test_an_encoder_as_first_step_types_only_its_string_columns_as_object(numeric_data):
    X, _, y_class = numeric_data
    frame = pd.DataFrame({"city": np.where(X[:, 0] > 0, "Oslo", "Lima"), "floor": X[:, 1] > 0})
    model = make_pipeline(OneHotEncoder(), DecisionTreeClassifier()).fit(frame, y_class)

    features = describe(model).signature.features

    assert features == (Feature("city", "object"), Feature("floor", "float64"))


def test_feature_names_name_a_model_fitted_without_names(numeric_data):
    X, y, _ = numeric_data

    description = describe(LinearRegression().fit(X, y), ["rooms", "area", "age"])

    assert description.signature.names == ["rooms", "area", "age"]


def test_feature_names_equal_to_the_fitted_names_are_accepted(pipeline_case):
    description = describe(pipeline_case.model, ["size", "age", "colour"])

    assert description.signature.names == ["size", "age", "colour"]


def test_feature_names_that_differ_from_the_fitted_names_are_refused(frame_data, new_model):
    frame, y, _ = frame_data
    model = new_model(LinearRegression, pipeline=True).fit(frame, y)

    with pytest.raises(InvalidArtifact, match="differ from the names the model was fitted with"):
        describe(model, ["a", "b", "c"])


@pytest.mark.parametrize(
    ("names", "problem"),
    [
        (["a", "b"], "has 2 names but the model takes 3 features"),
        (["a", "b", "c", "d"], "has 4 names but the model takes 3 features"),
        (["a", "a", "b"], "must be unique"),
        (["a", "", "b"], "must all be non-empty strings"),
        (["a", 2, "b"], "must all be non-empty strings"),
    ],
)
def test_feature_names_must_be_as_many_unique_non_empty_strings_as_features(
    numeric_data, names, problem
):
    X, y, _ = numeric_data

    with pytest.raises(InvalidArtifact, match=problem):
        describe(LinearRegression().fit(X, y), names)


@pytest.mark.parametrize("pipeline", [False, True], ids=["bare", "pipeline"])
def test_an_unfitted_model_is_refused(new_model, pipeline):
    with pytest.raises(InvalidArtifact, match="is not fitted; fit it before uploading"):
        describe(new_model(LogisticRegression, pipeline=pipeline))


@pytest.mark.parametrize(
    "estimator",
    [SVC(), KNeighborsRegressor(), StandardScaler(), make_pipeline(StandardScaler(), SVC())],
    ids=["SVC", "KNeighborsRegressor", "a transformer alone", "SVC in a pipeline"],
)
def test_an_unsupported_estimator_is_refused_with_what_is_accepted(numeric_data, estimator):
    X, _, y_class = numeric_data
    estimator.fit(X, y_class)

    with pytest.raises(InvalidArtifact) as refused:
        describe(estimator)

    detail = refused.value.detail
    assert "is not a supported model" in detail
    assert "linear: LinearRegression, Ridge, Lasso, ElasticNet" in detail
    assert "forest: RandomForestRegressor, RandomForestClassifier" in detail


def test_an_unsupported_pipeline_step_is_refused(numeric_data):
    X, y, _ = numeric_data
    model = Pipeline([("reduce", PCA(n_components=2)), ("model", LinearRegression())]).fit(X, y)

    with pytest.raises(InvalidArtifact, match="Pipeline step sklearn.decomposition.PCA"):
        describe(model)


def test_a_multi_output_classifier_is_refused(numeric_data):
    X, _, y_class = numeric_data
    model = DecisionTreeClassifier().fit(X, np.column_stack([y_class, 1 - y_class]))

    with pytest.raises(InvalidArtifact, match="multi-output classifiers are not supported"):
        describe(model)


def test_a_model_without_a_fitted_attribute_its_compiled_form_reads_is_refused_not_a_500(numeric_data):
    """Found by the pickle fuzzer (tests/fuzz): a LogisticRegression without ``intercept_`` passed
    ``check_is_fitted`` (it has ``coef_``), and the worker's ``predictor_for`` raised AttributeError on it."""
    X, _, classes = numeric_data
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, classes)
    del model.steps[-1][1].intercept_
    with pytest.raises(InvalidArtifact, match="cannot be served as it is: .*intercept_"):
        describe(model)


def test_a_classifier_without_its_classes_is_refused_not_a_500(numeric_data):
    """Found by the pickle fuzzer (tests/fuzz): a classifier whose state lacks ``classes_`` passed ``check_is_fitted``,
    and naming its classes raised AttributeError: a 500 on upload."""
    X, _, classes = numeric_data
    model = RandomForestClassifier(n_estimators=3, random_state=0).fit(X, classes)
    del model.classes_
    with pytest.raises(InvalidArtifact, match="without the classes_ it was fitted with"):
        describe(model)


def test_a_linear_model_without_its_coefficients_is_refused_not_served_as_it_is(numeric_data):
    """Found by the pickle fuzzer (tests/fuzz): a LogisticRegression whose state lacks ``coef_`` was not compiled but
    served as the estimator itself, whose every predict would raise AttributeError (a 500)."""
    X, _, classes = numeric_data
    model = LogisticRegression().fit(X, classes)
    del model.coef_
    with pytest.raises(InvalidArtifact, match="cannot be served as it is: LogisticRegression has no coef_ array"):
        describe(model)
