"""The models and request bodies every scenario uses: a logistic regression and a 100-tree random forest;
for the floor, also a 100-tree depth-6 XGBoost booster, uploaded as the JSON file its ``save_model`` writes."""
import io
import json
from pathlib import Path

import joblib
import numpy as np
import requests
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression

FEATURES = 8
TRAINING_ROWS = 2000
BATCH_SIZES = (1, 100)
MODELS = ("logistic", "forest")
EXAMPLE_ROWS = 3


def training_data() -> tuple[np.ndarray, np.ndarray]:
    """A fixed binary classification problem (no feature names: the registry calls them x0..x7)."""
    return make_classification(
        n_samples=TRAINING_ROWS, n_features=FEATURES, n_informative=5, random_state=0
    )


def fit(model: str, seed: int = 0):
    """``logistic`` or ``forest`` (100 fully grown trees); ``seed`` varies the fit, never the signature."""
    X, y = training_data()
    if model == "logistic":
        return LogisticRegression(C=1.0 / (seed + 1), max_iter=1000).fit(X, y)
    return RandomForestClassifier(n_estimators=100, random_state=seed).fit(X, y)


def fit_models() -> dict[str, object]:
    """Both models, fitted on the same data."""
    return {model: fit(model) for model in MODELS}


def versions_of(model: str, count: int) -> list:
    """``count`` distinct fits of ``model`` with one signature: the versions the swap scenario moves between."""
    return [fit(model, seed) for seed in range(count)]


def write_bodies(directory: Path) -> dict[int, Path]:
    """``{"instances": [...]}`` files with 1 and 100 rows, drawn from the training distribution."""
    X, _ = training_data()
    bodies = {}
    for rows in BATCH_SIZES:
        path = directory / f"body-{rows}.json"
        path.write_text(json.dumps({"instances": np.round(X[:rows], 6).tolist()}))
        bodies[rows] = path
    return bodies


def save(estimator, path: Path) -> Path:
    """The estimator as a joblib file (what the baseline loads)."""
    joblib.dump(estimator, path)
    return path


def xgboost_file(seed: int = 0) -> bytes | None:
    """A 100-tree, depth-6 XGBoost binary booster fitted on the same data, as the JSON file ``save_model``
    writes; None where XGBoost is not installed."""
    try:
        import xgboost
    except ImportError:
        return None
    X, y = training_data()
    booster = xgboost.train({"objective": "binary:logistic", "max_depth": 6, "eta": 0.1, "seed": seed, "nthread": 1},
                            xgboost.DMatrix(X, label=y), 100)
    return bytes(booster.save_raw("json"))


def register(live, name: str, estimator, example: np.ndarray | None = None) -> int:
    """Upload ``estimator`` with an input example (``example``'s first rows, else the bench data's) to the live
    registry; its version number."""
    buffer = io.BytesIO()
    joblib.dump(estimator, buffer)
    return register_file(live, name, "model.joblib", buffer.getvalue(), example)


def register_file(live, name: str, filename: str, content: bytes, example: np.ndarray | None = None) -> int:
    """Upload the artifact file ``content`` with an input example (``example``'s first rows, else the bench
    data's) to the live registry; its version number."""
    X = training_data()[0] if example is None else example
    metadata = {"input_example": np.round(X[:EXAMPLE_ROWS], 6).tolist(), "description": "bench"}
    response = requests.post(
        f"{live.url}/models/{name}/versions",
        files={"artifact": (filename, content)},
        data={"metadata": json.dumps(metadata)},
        headers=live.headers,
        timeout=120,
    )
    if response.status_code not in (200, 201):
        raise RuntimeError(f"upload of {name} failed: {response.status_code} {response.text}")
    return response.json()["version"]
