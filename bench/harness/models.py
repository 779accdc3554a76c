"""Models that name their version in every answer, and uploading them to a live registry over HTTP."""
import io
import json

import joblib
import numpy as np
import requests
from sklearn.linear_model import LinearRegression

PROBE_ROW = [1.0, 1.0, 1.0]


def scaled_sum(factor: float, n_features=3) -> LinearRegression:
    """A regressor answering ``factor * sum(x)``: on PROBE_ROW it says ``3 * factor``, naming its version."""
    X = np.random.default_rng(0).normal(size=(30, n_features))
    return LinearRegression().fit(X, factor * X.sum(axis=1))


def expected_prediction(factor: float) -> float:
    """What ``scaled_sum(factor)`` answers on PROBE_ROW."""
    return len(PROBE_ROW) * factor


def artifact_bytes(estimator, compress=0) -> bytes:
    """``estimator`` as the bytes of a joblib file."""
    buffer = io.BytesIO()
    joblib.dump(estimator, buffer, compress=compress)
    return buffer.getvalue()


def upload(live, name: str, estimator, headers=None, metadata=None) -> requests.Response:
    """Upload ``estimator`` to the live registry."""
    files = {"artifact": ("model.joblib", artifact_bytes(estimator))}
    data = {"metadata": json.dumps(metadata)} if metadata else None
    return requests.post(f"{live.url}/models/{name}/versions", files=files, data=data, headers=headers or live.headers, timeout=60)
