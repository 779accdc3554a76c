"""A real gunicorn (3 workers) serving boosted models: every worker answers scikit-learn's own bits from the
served form's wide node records, and a promotion swaps one boosted version for another; LightGBM files
answer LightGBM's own bits likewise."""
from pathlib import Path

import numpy as np
import pytest
import requests
from sklearn.ensemble import GradientBoostingClassifier, HistGradientBoostingClassifier

from bench.harness.models import artifact_bytes
from registry.inference.tree_walk import WIDE_NODE
from tests.databases import BACKEND
from tests.helpers import wait_for

pytestmark = pytest.mark.skipif(
    BACKEND != "sqlite",
    reason=("the served forms' bits are what it tests, the same on either database; "
            "tests/integration/test_boosted_api.py runs on both: the SQLite pass runs it"),
)

RNG = np.random.default_rng(5)
X = RNG.normal(size=(2000, 5))
X[:, 4] = RNG.integers(0, 8, len(X))
LABELS = np.array(["low", "mid", "high"])
ROWS = X[:60].copy()
ROWS[::7, 4] = 11.0  # a category never seen


def hgb(seed: int) -> HistGradientBoostingClassifier:
    y = ((X[:, 0] + RNG.normal(size=len(X)) > 0) ^ np.isin(X[:, 4], [2, 5])).astype(int)
    return HistGradientBoostingClassifier(max_iter=60, categorical_features=[4], random_state=seed).fit(X, y)


def gb() -> GradientBoostingClassifier:
    y = LABELS[(X[:, 0] > 0).astype(int) + (X[:, 1] > 0.5)]
    return GradientBoostingClassifier(n_estimators=40, max_depth=4, random_state=0).fit(X, y)


def upload(live, name: str, model) -> dict:
    created = requests.post(f"{live.url}/models/{name}/versions", headers=live.headers, timeout=120,
                            files={"artifact": ("model.joblib", artifact_bytes(model))})
    assert created.status_code == 201, created.text
    return created.json()


def promote(live, name: str, number: int) -> None:
    promoted = requests.post(f"{live.url}/models/{name}/versions/{number}/promote", json={}, headers=live.headers,
                             timeout=60)
    assert promoted.status_code == 200, promoted.text


def answers_exactly(live, name: str, model, times: int = 9) -> bool:
    """``times`` answers in a row (every worker, most likely) are 200 with exactly the model's labels and
    probabilities."""
    for _ in range(times):
        response = requests.post(f"{live.url}/models/{name}/production/predict",
                                 json={"instances": ROWS.tolist(), "return_proba": True}, timeout=60)
        if response.status_code != 200:
            return False
        body = response.json()
        if body["predictions"] != model.predict(ROWS).tolist():
            return False
        if body["probabilities"] != model.predict_proba(ROWS).tolist():
            return False
    return True


def test_boosted_models_are_served_exactly_by_every_worker_and_hot_swapped(live_registry):
    live = live_registry
    first, second, other = hgb(0), hgb(1), gb()
    created = upload(live, "churn", first)
    assert created["kind"] == "boosting"
    promote(live, "churn", 1)
    assert answers_exactly(live, "churn", first)
    form = Path(live.env["ARTIFACT_CACHE_DIR"]) / "forms" / created["sha256"][:2] / created["sha256"]
    assert any(np.load(path, mmap_mode="r").dtype == WIDE_NODE for path in form.glob("*.npy"))

    upload(live, "churn", second)
    promote(live, "churn", 2)
    wait_for(lambda: answers_exactly(live, "churn", second), "every worker to serve version 2")

    upload(live, "tiers", other)
    promote(live, "tiers", 1)
    assert answers_exactly(live, "tiers", other)
    metadata = requests.get(f"{live.url}/v2/models/tiers", timeout=30).json()
    assert metadata["parameters"]["kind"] == "boosting"


def lightgbm_text(seed: int) -> str:
    """A binary LightGBM model on the same rows (the categorical column 4 as LightGBM's own), saved as text."""
    import lightgbm

    y = ((X[:, 0] + np.random.default_rng(seed).normal(size=len(X)) > 0) ^ np.isin(X[:, 4], [2, 5])).astype(int)
    params = {"objective": "binary", "num_leaves": 15, "verbose": -1, "num_threads": 1, "seed": seed}
    return lightgbm.train(params, lightgbm.Dataset(X, y, categorical_feature=[4]), 40).model_to_string()


def test_lightgbm_files_are_served_exactly_by_every_worker_and_hot_swapped(live_registry):
    import lightgbm

    live = live_registry
    for number, seed in ((1, 0), (2, 1)):
        text = lightgbm_text(seed)
        created = requests.post(f"{live.url}/models/lgbm/versions", headers=live.headers, timeout=120,
                                files={"artifact": ("model.txt", text.encode())},
                                data={"metadata": '{"classes": ["stay", "leave"]}'})
        assert created.status_code == 201, created.text
        assert (created.json()["framework"], created.json()["version"]) == ("lightgbm", number)
        promote(live, "lgbm", number)
        p = lightgbm.Booster(model_str=text).predict(ROWS)
        expected = {"predictions": np.array(["stay", "leave"])[(p > 0.5).astype(int)].tolist(),
                    "probabilities": [[1.0 - v, v] for v in p.tolist()]}

        def answers_exactly() -> bool:
            for _ in range(9):
                response = requests.post(f"{live.url}/models/lgbm/production/predict",
                                         json={"instances": ROWS.tolist(), "return_proba": True}, timeout=60)
                if response.status_code != 200 or {k: response.json()[k] for k in expected} != expected:
                    return False
            return True

        wait_for(answers_exactly, f"every worker to serve version {number}")
    assert requests.get(f"{live.url}/v2/models/lgbm", timeout=30).json()["platform"] == "lightgbm"
