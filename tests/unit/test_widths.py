"""The widths a model states, read off its arrays: scikit-learn's own transforms are the oracle."""
import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import MinMaxScaler, OneHotEncoder, OrdinalEncoder, RobustScaler, StandardScaler

from registry.artifacts.loading.widths import check_widths, output_width
from registry.errors import ArtifactTooLarge, InvalidArtifact


def _frame(n_rows=120, seed=0):
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "a": rng.normal(size=n_rows),
        "b": rng.normal(size=n_rows),
        "empty": np.full(n_rows, np.nan),
        "city": rng.choice(["oslo", "rome", "lima", "pune", "kiev"], size=n_rows, p=[0.4, 0.3, 0.2, 0.07, 0.03]),
        "tier": rng.choice(["x", "y"], size=n_rows),
    })
    frame.loc[::7, "a"] = np.nan
    return frame, (frame["b"] > 0).astype(int)


PREPARATIONS = {
    "scalers": lambda: make_pipeline(SimpleImputer(), StandardScaler(), MinMaxScaler(), RobustScaler()),
    "imputer-drops-empty": lambda: SimpleImputer(),
    "imputer-keeps-empty": lambda: SimpleImputer(keep_empty_features=True),
    "imputer-constant": lambda: SimpleImputer(strategy="constant", fill_value=0.0),
    "imputer-indicator": lambda: SimpleImputer(add_indicator=True),
}
CATEGORICAL = {
    "one-hot": lambda: OneHotEncoder(),
    "one-hot-drop-first": lambda: OneHotEncoder(drop="first"),
    "one-hot-if-binary": lambda: OneHotEncoder(drop="if_binary"),
    "one-hot-infrequent": lambda: OneHotEncoder(min_frequency=10, handle_unknown="infrequent_if_exist"),
    "ordinal": lambda: OrdinalEncoder(),
}
NUMERIC = ["a", "b", "empty"]


@pytest.mark.parametrize("make", PREPARATIONS.values(), ids=PREPARATIONS.keys())
def test_the_width_a_numeric_step_gives_is_what_it_transforms_to_or_unknown(make):
    frame, _ = _frame()
    step = make().fit(frame[NUMERIC])

    expected = None if getattr(step, "add_indicator", False) else step.transform(frame[NUMERIC]).shape[1]
    assert output_width(step) == expected


@pytest.mark.parametrize("make", CATEGORICAL.values(), ids=CATEGORICAL.keys())
def test_the_width_an_encoder_gives_is_what_it_transforms_to(make):
    frame, _ = _frame()
    encoder = make().fit(frame[["city", "tier"]])

    assert output_width(encoder) == encoder.transform(frame[["city", "tier"]]).shape[1]


@pytest.mark.parametrize("remainder", ["drop", "passthrough"])
@pytest.mark.parametrize("encoder", CATEGORICAL.values(), ids=CATEGORICAL.keys())
def test_a_column_transformer_gives_the_sum_of_its_parts_and_a_fitted_pipeline_passes(encoder, remainder):
    frame, y = _frame()
    prepare = ColumnTransformer(
        [("numbers", make_pipeline(SimpleImputer(keep_empty_features=True), StandardScaler()), ["a", "empty"]),
         ("categories", encoder(), ["city", "tier"])],
        remainder=remainder,
    )
    model = Pipeline([("prepare", prepare), ("model", LogisticRegression())]).fit(frame, y)

    assert output_width(model.steps[0][1]) == model.steps[0][1].transform(frame).shape[1]
    check_widths(model, max_features=20)


def test_a_forest_behind_an_imputer_that_drops_a_column_passes():
    frame, y = _frame()
    model = make_pipeline(SimpleImputer(), RandomForestClassifier(n_estimators=3, random_state=0)).fit(frame[NUMERIC], y)

    check_widths(model, max_features=3)


def test_a_step_inside_past_max_features_is_refused_naming_it():
    frame, y = _frame()
    prepare = ColumnTransformer([("categories", OneHotEncoder(), ["city", "tier"])])
    model = Pipeline([("prepare", prepare), ("model", LogisticRegression())]).fit(frame, y)

    with pytest.raises(ArtifactTooLarge, match="a LogisticRegression inside the model takes 7 features; at most 5"):
        check_widths(model, max_features=5)


def test_a_pipeline_past_max_features_is_refused_by_its_first_step():
    frame, y = _frame()
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(frame[["a", "b"]].fillna(0), y)

    with pytest.raises(ArtifactTooLarge, match="takes 2 features; at most 1"):
        check_widths(model, max_features=1)


def test_a_column_transformer_part_given_other_columns_than_it_takes_is_refused():
    frame, y = _frame()
    prepare = ColumnTransformer([("categories", OneHotEncoder(), ["city", "tier"])])
    model = Pipeline([("prepare", prepare), ("model", LogisticRegression())]).fit(frame, y)
    prepare.transformers_[0][1].n_features_in_ = 1
    prepare.transformers_[0][1].categories_ = prepare.transformers_[0][1].categories_[:1]
    prepare.transformers_[0][1].feature_names_in_ = prepare.transformers_[0][1].feature_names_in_[:1]

    with pytest.raises(InvalidArtifact, match="OneHotEncoder says it takes 1 features .* is given 2"):
        check_widths(model, max_features=None)
