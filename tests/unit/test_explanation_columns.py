"""A Pipeline's transformed features mapped back to the input column each comes from alone, or to none
when a step mixes columns (registry.serving.explanations.feature_sources)."""
import numpy as np
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, PolynomialFeatures, StandardScaler

from registry.serving.explanations import feature_sources

X = np.array([[0.0, 1.0, 2.0, np.nan], [1.0, np.nan, 0.0, np.nan], [2.0, 3.0, 1.0, np.nan], [0.0, 4.0, 2.0, np.nan]])


def test_scalers_are_one_to_one_and_a_one_hot_encoders_outputs_go_to_their_source():
    assert feature_sources([StandardScaler().fit(X[:, :3])], 3) == [0, 1, 2]
    assert feature_sources([OneHotEncoder().fit(X[:, [2, 0]])], 2) == [0, 0, 0, 1, 1, 1]
    assert feature_sources([OneHotEncoder(drop="first").fit(X[:, [2]])], 1) == [0, 0]
    assert feature_sources([OrdinalEncoder().fit(X[:, [2]])], 1) == [0]


def test_an_imputer_drops_an_empty_column_and_adds_indicators_of_the_columns_it_watched():
    assert feature_sources([SimpleImputer(add_indicator=True).fit(X)], 4) == [0, 1, 2, 1, 3]


def test_a_column_transformer_and_nested_steps_map_through_their_parts():
    encoded = ColumnTransformer([("hot", OneHotEncoder(), [2]), ("scaled", make_pipeline(
        SimpleImputer(), StandardScaler()), [1])], remainder="passthrough").fit(X[:, :3])
    assert feature_sources([encoded], 3) == [2, 2, 2, 1, 0]
    dropped = ColumnTransformer([("hot", OneHotEncoder(), [0])], remainder="drop").fit(X[:, :3])
    assert feature_sources([dropped, StandardScaler().fit(dropped.transform(X[:, :3]))], 3) == [0, 0, 0]


def test_a_step_that_mixes_columns_has_no_mapping():
    assert feature_sources([PolynomialFeatures(2).fit(X[:, [0, 2]])], 2) is None
    assert feature_sources([StandardScaler().fit(X[:, [0, 2]]), PolynomialFeatures(2).fit(X[:, [0, 2]])], 2) is None
