"""Over HTTP, a LightGBM text file uploads as the kind ``boosting``, promotes, and answers exactly what
``lightgbm.Booster.predict`` answers (also through V2); one file uploaded as two models naming other classes
answers each with its own; ``"explain": true`` answers LightGBM's own ``pred_contrib``; hostile files are refused
with 422 problem+json, wide ones with 413."""
import io
import json
import re

import numpy as np
import pytest

from api.domain import EXTENSION
from registry.inference.fast_boosting import CompiledBoosting
from tests.helpers import assert_problem

lgb = pytest.importorskip("lightgbm")
RNG = np.random.default_rng(0)
X = RNG.normal(size=(400, 4))
X[:, 3] = RNG.integers(0, 30, 400)  # a categorical column
X[RNG.random(400) < 0.2, 1] = 0.0
SIGNAL = X[:, 0] + (X[:, 3] % 3 == 0)
CASES = {
    "binary": ({"objective": "binary"}, (SIGNAL > 0.5).astype(int)),
    "multiclass": ({"objective": "multiclass", "num_class": 3}, np.digitize(SIGNAL, [0.0, 1.0])),
    "regression": ({"objective": "regression", "zero_as_missing": True}, SIGNAL),
}
NAMES = ["a", "b", "c", "d"]


def _model_text(case):
    params, y = CASES[case]
    params = {**params, "num_leaves": 8, "min_data_per_group": 5, "cat_smooth": 1.0, "verbose": -1, "num_threads": 1}
    return lgb.train(params, lgb.Dataset(X, y, feature_name=NAMES, categorical_feature=[3]), 15).model_to_string()


def _upload(client, ci, data: bytes, metadata=None, name="gbm"):
    form = {"artifact": (io.BytesIO(data), "model.txt")}
    if metadata is not None:
        form["metadata"] = json.dumps(metadata)
    return client.post(f"/models/{name}/versions", data=form, headers=ci, content_type="multipart/form-data")


def _rows():
    rows = np.concatenate([X[:50], RNG.normal(size=(20, 4))])
    rows[50:, 3] = RNG.integers(-2, 40, 20)  # unseen and negative categories too
    rows[:5, 1] = [0.0, 1e-36, -1e-40, 5.0, -5.0]
    return rows


@pytest.mark.parametrize("case", CASES)
def test_a_lightgbm_file_is_served_exactly_as_lightgbm_answers(app, client, ci, case):
    text = _model_text(case)
    response = _upload(client, ci, text.encode())
    assert response.status_code == 201, response.get_json()
    version = client.get("/models/gbm/versions/1", headers=ci).get_json()
    assert (version["kind"], version["estimator"], version["framework"]) == ("boosting", "lightgbm.Booster", "lightgbm")
    assert [f["name"] for f in version["signature"]["features"]] == NAMES
    assert version["task"] == ("regression" if case == "regression" else "classification")
    assert client.post("/models/gbm/versions/1/promote", json={}, headers=ci).status_code == 200
    rows = _rows()
    classifier = case != "regression"
    body = client.post("/models/gbm/production/predict",
                       json={"dataframe_split": {"columns": NAMES, "data": rows.tolist()},
                             "return_proba": classifier}).get_json()
    assert "detail" not in body, body
    library = lgb.Booster(model_str=text).predict(rows)
    if case == "binary":
        assert body["probabilities"] == [[1.0 - p, p] for p in library.tolist()]
        assert body["predictions"] == (library > 0.5).astype(int).tolist()
    elif case == "multiclass":
        assert body["probabilities"] == library.tolist()
        assert body["predictions"] == np.argmax(library, axis=1).tolist()
    else:
        assert body["predictions"] == library.tolist()
    with app.app_context():
        served = app.extensions[EXTENSION].runtime.models.servable("gbm", "production")
    assert isinstance(served.predictor.compiled, CompiledBoosting)
    metadata = client.get("/v2/models/gbm").get_json()
    assert metadata["platform"] == "lightgbm" and metadata["parameters"]["kind"] == "boosting"
    card = client.get("/ui/models/gbm/versions/1").get_data(as_text=True)
    assert "<code>lightgbm.Booster</code>" in card and '<dd data-field="framework">lightgbm</dd>' in card


def test_one_file_uploaded_as_two_models_answers_each_with_its_own_classes(client, ci):
    """Both versions are served from one form (the artifact's sha256 names it): each names its own classes."""
    data = _model_text("multiclass").encode()
    for name, classes in (("first", ["low", "mid", "high"]), ("second", [10, 20, 30])):
        assert _upload(client, ci, data, {"classes": classes}, name=name).status_code == 201
        assert client.post(f"/models/{name}/versions/1/promote", json={}, headers=ci).status_code == 200
    rows = _rows()
    expected = np.argmax(lgb.Booster(model_str=data.decode()).predict(rows), axis=1)
    for _ in range(2):  # and again, once both are loaded
        for name, classes in (("first", ["low", "mid", "high"]), ("second", [10, 20, 30])):
            body = client.post(f"/models/{name}/production/predict",
                               json={"instances": rows.tolist(), "return_proba": True}).get_json()
            assert body["predictions"] == [classes[k] for k in expected], name
            assert client.get(f"/v2/models/{name}").get_json()["outputs"][1]["parameters"]["classes"] == classes


def test_a_regressor_naming_classes_is_refused_with_422(client, ci):
    assert_problem(_upload(client, ci, _model_text("regression").encode(), {"classes": ["a", "b"]}), 422, "regressor")


def _without_sizes(text):
    return re.sub(r"^tree_sizes=.*\n", "", text, flags=re.M)


@pytest.mark.parametrize("damage,fragment", [
    (lambda t: t[: len(t) // 3], "truncated"),
    (lambda t: re.sub(r"^num_leaves=\d+$", "num_leaves=2000000000", _without_sizes(t), count=1, flags=re.M),
     "num_leaves"),
    (lambda t: re.sub(r"^left_child=\S+", "left_child=0", _without_sizes(t), count=1, flags=re.M), "reached twice"),
    (lambda t: re.sub(r"^split_feature=\S+", "split_feature=7", _without_sizes(t), count=1, flags=re.M), "column"),
    (lambda t: re.sub(r"^tree_sizes=\S+", "tree_sizes=5", t, count=1, flags=re.M), "tree_sizes"),
    (lambda t: t.replace("objective=binary", "objective=lambdarank"), "objective"),
    # past Python's 4,300 digits a string makes no int: a 500 once
    (lambda t: re.sub(r"sigmoid:\S+", "sigmoid:1e" + "9" * 5000, t, count=1), "sigmoid"),
    (lambda t: re.sub(r"sigmoid:\S+", "sigmoid:1" + "0" * 5000, t, count=1), "sigmoid"),
    # each line a Python string of 50 bytes and more: a file of short lines is refused before they are made
    (lambda t: t + "ab\n" * 400_000, "one for every 8 bytes"),
])
def test_hostile_lightgbm_files_are_refused_with_422(client, ci, damage, fragment):
    text = _model_text("binary")
    damaged = damage(text)
    assert damaged != text
    assert_problem(_upload(client, ci, damaged.encode()), 422, fragment)


def test_a_lightgbm_model_wider_than_max_features_is_413(client, ci):
    text = _model_text("regression")
    wide = 20_000
    text = re.sub(r"^max_feature_idx=\d+$", f"max_feature_idx={wide - 1}", text, flags=re.M)
    text = re.sub(r"^feature_names=.*$", "feature_names=" + " ".join(f"f{i}" for i in range(wide)), text, flags=re.M)
    text = re.sub(r"^feature_infos=.*$", "feature_infos=" + " ".join(["none"] * wide), text, flags=re.M)
    assert_problem(_upload(client, ci, text.encode()), 413, "20,000 features", "MAX_FEATURES")


@pytest.mark.parametrize("case", CASES)
def test_a_lightgbm_version_explains_each_row_as_lightgbms_own_pred_contrib(client, ci, case):
    """``"explain": true`` answers LightGBM's own TreeSHAP (``pred_contrib=True``) per input column, adding up to
    its raw score: zeros, values within kZeroThreshold, missing values (null), unseen and negative categories."""
    text = _model_text(case)
    assert _upload(client, ci, text.encode()).status_code == 201
    assert client.post("/models/gbm/versions/1/promote", json={}, headers=ci).status_code == 200
    rows = _rows()
    rows[5:8, 0] = np.nan
    rows[8, 1] = np.nan
    instances = [[None if np.isnan(v) else v for v in row] for row in rows.tolist()]
    plain = client.post("/models/gbm/production/predict", json={"instances": instances})
    response = client.post("/models/gbm/production/predict", json={"instances": instances, "explain": True})
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["predictions"] == plain.get_json()["predictions"]
    assert body["explanation_space"] == ("prediction" if case == "regression" else "margin")
    booster = lgb.Booster(model_str=text)
    n_outputs = 3 if case == "multiclass" else 1
    raw = booster.predict(rows, raw_score=True).reshape(len(rows), n_outputs)
    contributions = booster.predict(rows, pred_contrib=True).reshape(len(rows), n_outputs, len(NAMES) + 1)
    assert len(body["explanations"]) == len(rows)
    for explanation, margin, expected in zip(body["explanations"], raw, contributions):
        assert list(explanation["values"]) == NAMES
        values = np.array(list(explanation["values"].values()), dtype=np.float64).reshape(len(NAMES), n_outputs)
        base = np.asarray(explanation["base_value"], dtype=np.float64).reshape(n_outputs)
        np.testing.assert_allclose(base + values.sum(axis=0), margin, rtol=0, atol=1e-9)
        np.testing.assert_allclose(values.T, expected[:, :-1], rtol=0, atol=1e-9)
        np.testing.assert_allclose(base, expected[:, -1], rtol=0, atol=1e-9)
