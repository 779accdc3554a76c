"""Uploading models to a live registry over HTTP, and what they should answer."""
import json

import requests

from tests.helpers import PROBE_ROW, artifact_bytes, scaled_sum

__all__ = ["PROBE_ROW", "expected_prediction", "scaled_sum", "upload"]


def expected_prediction(factor: float) -> float:
    """What ``scaled_sum(factor)`` answers on PROBE_ROW."""
    return len(PROBE_ROW) * factor


def upload(live, name: str, estimator, headers=None, metadata=None) -> requests.Response:
    """Upload ``estimator`` to the live registry."""
    files = {"artifact": ("model.joblib", artifact_bytes(estimator))}
    data = {"metadata": json.dumps(metadata)} if metadata else None
    return requests.post(f"{live.url}/models/{name}/versions", files=files, data=data, headers=headers or live.headers, timeout=60)
