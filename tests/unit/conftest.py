"""Small fitted models of every supported kind, bare and in Pipelines, and a way to dump them."""
import functools
import io
import pickle
from dataclasses import dataclass

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from registry.artifacts.supported_estimators import MODELS

MODEL_CLASSES = MODELS  # every supported class: (kind, task)


@dataclass(frozen=True)
class ModelCase:
    """A fitted model, the rows it was fitted on, and what it is expected to be."""

    model: object
    X: object
    kind: str
    task: str
    model_class: type
    pipeline: bool


def _new_model(cls, pipeline=False):
    if cls in (RandomForestClassifier, RandomForestRegressor):
        model = cls(n_estimators=3, max_depth=3, random_state=0)
    elif cls in (DecisionTreeClassifier, DecisionTreeRegressor):
        model = cls(max_depth=3, random_state=0)
    else:
        model = cls()
    return _preprocessed(model) if pipeline else model


@pytest.fixture(scope="session")
def numeric_data():
    """Rows of three numbers, a numeric target and an integer class target."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3))
    y = X @ [1.0, -2.0, 0.5] + rng.normal(scale=0.1, size=40)
    return X, y, (y > 0).astype(int)


@pytest.fixture(scope="session")
def frame_data(numeric_data):
    """A DataFrame with two numeric columns (one with gaps) and a string column."""
    X, y, _ = numeric_data
    frame = pd.DataFrame({
        "size": X[:, 0],
        "age": X[:, 1],
        "colour": np.random.default_rng(1).choice(["red", "green", "blue"], size=len(X)),
    })
    frame.loc[[2, 7], "size"] = np.nan
    return frame, y, np.where(y > 0, "yes", "no")


def _preprocessed(model) -> Pipeline:
    """``model`` behind imputation, scaling and one-hot encoding of the ``colour`` column."""
    columns = ColumnTransformer([
        ("numbers", make_pipeline(SimpleImputer(), StandardScaler()), ["size", "age"]),
        ("colour", OneHotEncoder(handle_unknown="ignore"), ["colour"]),
    ])
    return Pipeline([("prepare", columns), ("model", model)])


@pytest.fixture(scope="session")
def new_model():
    """``new_model(cls, pipeline=False)``: a small unfitted model, alone or behind preprocessing."""
    return _new_model


@pytest.fixture(scope="session")
def fitted(numeric_data, frame_data):
    """``fitted(cls, pipeline)``: a ModelCase, fitted once per session."""

    @functools.cache
    def fit(cls, pipeline: bool) -> ModelCase:
        kind, task = MODEL_CLASSES[cls]
        X, y_number, y_class = frame_data if pipeline else numeric_data
        model = _new_model(cls, pipeline).fit(X, y_class if task == "classification" else y_number)
        return ModelCase(model, X, kind, task, cls, pipeline)

    return fit


CLASS_IDS = [cls.__name__ for cls in MODEL_CLASSES]


@pytest.fixture(
    params=[(cls, pipeline) for pipeline in (False, True) for cls in MODEL_CLASSES],
    ids=[f"{name}-{shape}" for shape in ("bare", "pipeline") for name in CLASS_IDS],
)
def model_case(request, fitted):
    """Each supported model class, fitted bare on numbers and as a Pipeline on a DataFrame."""
    return fitted(*request.param)


@pytest.fixture(params=MODEL_CLASSES, ids=CLASS_IDS)
def bare_case(request, fitted):
    """Each supported model class, fitted on an array of numbers."""
    return fitted(request.param, False)


@pytest.fixture(params=MODEL_CLASSES, ids=CLASS_IDS)
def pipeline_case(request, fitted):
    """Each supported model class behind a ColumnTransformer, fitted on a DataFrame."""
    return fitted(request.param, True)


def _dump(obj, how: str) -> bytes:
    if how.startswith("pickle-"):
        return pickle.dumps(obj, protocol=int(how.removeprefix("pickle-")))
    buffer = io.BytesIO()
    compress = 0 if how == "joblib" else (how.removeprefix("joblib-"), 3)
    joblib.dump(obj, buffer, compress=compress)
    return buffer.getvalue()


@pytest.fixture(scope="session")
def dump():
    """``dump(obj, how)``: ``obj`` as bytes; ``how`` is pickle-N, joblib or joblib-<compressor>."""
    return _dump
