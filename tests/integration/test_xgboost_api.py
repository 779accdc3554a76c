"""Over HTTP, an XGBoost file (JSON or UBJSON) uploads as the kind ``boosting``, promotes, and answers
exactly what ``xgboost.Booster.predict`` answers; hostile files are refused with 422 problem+json."""
import io
import json
from dataclasses import replace

import numpy as np
import pytest

from api.domain import EXTENSION
from api.settings import settings_of
from registry.inference.fast_boosting import CompiledBoosting
from tests.helpers import assert_problem

xgb = pytest.importorskip("xgboost")
RNG = np.random.default_rng(0)
X = RNG.normal(size=(400, 4)).astype(np.float32)
X[RNG.random(X.shape) < 0.1] = np.nan
CASES = {
    "binary": ({"objective": "binary:logistic"}, (np.nan_to_num(X[:, 0]) > 0).astype(int)),
    "softprob": ({"objective": "multi:softprob", "num_class": 3}, RNG.integers(0, 3, 400)),
    "softmax": ({"objective": "multi:softmax", "num_class": 3}, RNG.integers(0, 3, 400)),
    "regression": ({"objective": "reg:squarederror"}, RNG.normal(size=400)),
}


def _booster(case):
    params, y = CASES[case]
    return xgb.train({**params, "max_depth": 4, "nthread": 1}, xgb.DMatrix(X, label=y, feature_names=list("abcd")), 15)


def _upload(client, ci, data: bytes, metadata=None):
    form = {"artifact": (io.BytesIO(data), "model.bin")}
    if metadata is not None:
        form["metadata"] = json.dumps(metadata)
    return client.post("/models/gbm/versions", data=form, headers=ci, content_type="multipart/form-data")


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("raw_format", ["json", "ubj"])
def test_an_xgboost_file_is_served_exactly_as_xgboost_answers(app, client, ci, case, raw_format):
    booster = _booster(case)
    response = _upload(client, ci, bytes(booster.save_raw(raw_format)))
    assert response.status_code == 201, response.get_json()
    version = client.get("/models/gbm/versions/1", headers=ci).get_json()
    assert (version["kind"], version["estimator"], version["framework"]) == ("boosting", "xgboost.Booster", "xgboost")
    assert [f["name"] for f in version["signature"]["features"]] == list("abcd")
    assert client.post("/models/gbm/versions/1/promote", json={}, headers=ci).status_code == 200
    rows = np.nan_to_num(np.concatenate([X[:50], RNG.normal(size=(20, 4))]).astype(np.float64))  # JSON has no NaN
    classifier = case != "regression"
    body = client.post("/models/gbm/production/predict",
                       json={"dataframe_split": {"columns": list("abcd"), "data": rows.tolist()},
                             "return_proba": classifier and case != "softmax"}).get_json()
    assert "detail" not in body, body
    library = booster.predict(xgb.DMatrix(rows, feature_names=list("abcd")))
    if case == "binary":
        assert body["probabilities"] == [[float(np.float32(1) - p), float(p)] for p in library]
        assert body["predictions"] == (library > 0.5).astype(int).tolist()
    elif case == "softprob":
        assert body["probabilities"] == library.astype(np.float64).tolist()
    elif case == "softmax":
        assert body["predictions"] == library.astype(int).tolist()
    else:
        assert body["predictions"] == library.astype(np.float64).tolist()
    with app.app_context():
        served = app.extensions[EXTENSION].runtime.models.servable("gbm", "production")
    assert isinstance(served.predictor.compiled, CompiledBoosting)


def test_classes_named_in_the_metadata_are_the_answers(client, ci):
    response = _upload(client, ci, bytes(_booster("softprob").save_raw("json")),
                       {"classes": ["low", "mid", "high"]})
    assert response.status_code == 201, response.get_json()
    assert client.post("/models/gbm/versions/1/promote", json={}, headers=ci).status_code == 200
    body = client.post("/models/gbm/production/predict", json={"instances": np.nan_to_num(X[:5]).tolist()}).get_json()
    assert set(body["predictions"]) <= {"low", "mid", "high"}
    assert_problem(_upload(client, ci, bytes(_booster("binary").save_raw("json")), {"classes": ["a", "b", "c"]}),
                   422, "classes")


def test_one_file_uploaded_as_two_models_answers_each_with_its_own_classes(client, ci):
    """Both versions are served from one form (the artifact's sha256 names it): each names its own classes."""
    booster = _booster("softprob")
    data = bytes(booster.save_raw("json"))
    models = {"first": ["low", "mid", "high"], "second": [10, 20, 30]}
    for name, classes in models.items():
        form = {"artifact": (io.BytesIO(data), "model.json"), "metadata": json.dumps({"classes": classes})}
        response = client.post(f"/models/{name}/versions", data=form, headers=ci, content_type="multipart/form-data")
        assert response.status_code == 201, response.get_json()
        assert client.post(f"/models/{name}/versions/1/promote", json={}, headers=ci).status_code == 200
    rows = np.nan_to_num(X[:40]).astype(np.float64)
    expected = np.argmax(booster.predict(xgb.DMatrix(rows, feature_names=list("abcd"))), axis=1)
    for _ in range(2):  # and again, once both are loaded
        for name, classes in models.items():
            body = client.post(f"/models/{name}/production/predict", json={"instances": rows.tolist()}).get_json()
            assert body["predictions"] == [classes[k] for k in expected], name


@pytest.mark.parametrize("data,fragment", [
    (b"{\"learner\": " + b"[" * 100_000, "JSON"),
    (b"{L\x00\x00\x00\x00\x00\x00\x00\x07learner[$d#L\x7f\xff\xff\xff\xff\xff\xff\xff", "announces"),
    (b"{\"learner\": {}}", "missing"),
    (b"{L\x00\x00\x00\x00\x00\x00\x00\x07learner[" + b"Z" * 2_000_000 + b"]}", "far more values"),
    (b'{"learner": NaN}', "NaN"),
    (b'{"learner": {"x": [' + b"[1]," * 200_000 + b"[1]]}}", "an array of arrays"),
    (b'{"learner": {"x": [' + b"{}," * 200_000 + b"{}]}}", "one for every 8 bytes"),
], ids=["deep", "announces", "missing", "nulls", "nan", "arrays-of-arrays", "dense-skeleton"])
def test_hostile_xgboost_files_are_refused_with_422(client, ci, data, fragment):
    assert_problem(_upload(client, ci, data), 422, fragment)


@pytest.mark.parametrize("value", ["1e999", "-1e999"])
def test_an_xgboost_file_with_a_leaf_value_that_is_not_finite_is_refused_with_422(client, ci, value):
    """Once served: an infinite leaf makes its tree's answers infinite, or NaN beside another's."""
    document = json.loads(_booster("regression").save_raw("json"))
    tree = document["learner"]["gradient_booster"]["model"]["trees"][0]
    leaf = tree["left_children"].index(-1)
    tree["split_conditions"][leaf] = "LEAF"
    data = json.dumps(document).replace('"LEAF"', value).encode()
    assert_problem(_upload(client, ci, data), 422, "leaf value is not a finite number")
    assert client.get("/models/gbm/versions", headers=ci).status_code == 404


def test_a_truncated_ubjson_model_is_refused_with_422(client, ci):
    data = bytes(_booster("binary").save_raw("ubj"))
    assert_problem(_upload(client, ci, data[: len(data) // 2]), 422, "truncated")


def test_an_xgboost_model_wider_than_max_features_is_413(client, ci):
    document = json.loads(_booster("binary").save_raw("json"))
    document["learner"]["learner_model_param"]["num_feature"] = "20000"
    document["learner"]["feature_names"] = []
    assert_problem(_upload(client, ci, json.dumps(document).encode()), 413, "20,000 features", "MAX_FEATURES")


@pytest.mark.parametrize("types", [None, ["float"] * 4])
def test_a_ubjson_model_naming_more_features_than_max_features_is_413_and_one_at_the_bound_is_read(build_app, ci,
                                                                                                   types):
    """A UBJSON file's arrays of strings are at most the names and types of ``MAX_FEATURES`` features (the reader's
    bound on what short strings cost in memory): a model of 4 named (and typed) features is 413 under a bound of 3,
    as its width alone makes it, and is read under a bound of 4."""
    rows = xgb.DMatrix(X, label=np.nan_to_num(X[:, 0]), feature_names=list("abcd"), feature_types=types)
    booster = xgb.train({"max_depth": 2, "nthread": 1}, rows, 2)
    data = bytes(booster.save_raw("ubj"))
    narrow = build_app(MAX_FEATURES=3).test_client()
    assert_problem(_upload(narrow, ci, data), 413, "at most 3 features are accepted" if types else "4 features",
                   "MAX_FEATURES")
    assert _upload(build_app(MAX_FEATURES=4).test_client(), ci, data).status_code == 201


def test_an_xgboost_file_past_max_model_mb_is_413_before_it_is_parsed(build_app, ci):
    app = build_app()
    given = settings_of(app)  # a bound under MAX_UPLOAD_MB, which a start never sets: the loader's own check
    app.extensions["settings"] = replace(given, limits=replace(given.limits, max_model_bytes=2**20))
    client = app.test_client()
    data = bytes(_booster("binary").save_raw("json"))
    padded = data[:-1] + b" " * (1 << 20) + data[-1:]
    assert_problem(_upload(client, ci, padded), 413, "MAX_MODEL_MB")
