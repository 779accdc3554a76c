"""Small fitted models whose predictions say which version computed them."""
import io
import json

import joblib
import numpy as np
import requests
from sklearn.linear_model import LinearRegression

FEATURES = 3
PROBE_ROW = [1.0, 1.0, 1.0]


def scaled_sum_model(factor: float) -> LinearRegression:
    """A regressor predicting ``factor * sum(x)``: on PROBE_ROW it answers ``3 * factor``."""
    X = np.random.default_rng(0).normal(size=(30, FEATURES))
    return LinearRegression().fit(X, factor * X.sum(axis=1))


def expected_prediction(factor: float) -> float:
    return FEATURES * factor


def upload(live, name: str, estimator, headers=None, metadata=None) -> requests.Response:
    """Upload ``estimator`` to the live registry."""
    buffer = io.BytesIO()
    joblib.dump(estimator, buffer)
    files = {"artifact": ("model.joblib", buffer.getvalue())}
    data = {"metadata": json.dumps(metadata)} if metadata else None
    return requests.post(f"{live.url}/models/{name}/versions", files=files, data=data, headers=headers or live.headers, timeout=60)
