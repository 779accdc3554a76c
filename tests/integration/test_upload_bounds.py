"""Uploads over HTTP: bombs are 413 naming the limit, old pickles 422 with what to do, skops files work,
a width no array backs is refused."""
import pickle

import numpy as np
import pytest
import skops.io
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
from sklearn.linear_model import Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeRegressor

from bench.bomb_files import (
    MIB,
    empty_lists_pickle,
    many_arrays_bomb,
    one_array_bomb,
    skops_zip_bomb,
    wide_claim_linear,
)
from registry.artifacts.local_store import LocalStore
from registry.errors import ArtifactTooLarge, InvalidArtifact
from registry.facts import VersionInfo
from registry.serving.loader import ArtifactLoader
from tests.helpers import assert_problem, classification_data, regression_data
from tests.integration.test_predict_api import ESTIMATORS, fitted
from tests.integration.test_upload_bad_input import post_artifact, stored_files


@pytest.fixture
def small_app(build_app):
    """An app that lets an artifact unpack to 8 MB (uploads of up to 8 MB)."""
    return build_app(MAX_UPLOAD_MB=8, MAX_MODEL_MB=8)


BOMBS = {
    "zlib-one-array": lambda: one_array_bomb(256 * MIB, "zlib"),
    "gzip-many-arrays": lambda: many_arrays_bomb(256 * MIB, "gzip", array_bytes=MIB),
    "bz2-one-array": lambda: one_array_bomb(256 * MIB, "bz2"),
    "skops-zip": lambda: skops_zip_bomb(skops.io.dumps(fitted("linear", False)[0]), 256 * MIB),
}


@pytest.mark.parametrize("make", BOMBS.values(), ids=BOMBS.keys())
def test_a_bomb_is_413_naming_max_model_mb_and_nothing_is_stored(small_app, admin, make):
    response = post_artifact(small_app.test_client(), admin, data=make())

    body = assert_problem(response, 413, "MAX_MODEL_MB (8 MB)", "docs/artifacts.md")
    assert body["title"] == "Artifact too large"
    assert stored_files(small_app) == []
    assert small_app.test_client().get("/models/housing").status_code == 404


def test_a_pickle_of_millions_of_empty_lists_is_413_naming_the_object_limit(client, admin):
    response = post_artifact(client, admin, data=empty_lists_pickle(3_000_000))

    assert_problem(response, 413, "more than 1,000,000 objects")


def test_a_protocol_2_pickle_is_422_saying_to_dump_it_again(client, admin):
    model = RandomForestClassifier(n_estimators=2, random_state=0).fit(*classification_data())

    body = assert_problem(post_artifact(client, admin, data=pickle.dumps(model, protocol=2)), 422, "joblib.dump")

    assert len(body["detail"]) < 250


def test_a_refusal_for_a_disallowed_type_is_short_and_points_at_the_docs(client, admin):
    class Evil:
        def __reduce__(self):
            return eval, ("1",)

    body = assert_problem(post_artifact(client, admin, data=pickle.dumps(Evil(), protocol=4)), 422, "builtins.eval")

    assert "docs/artifacts.md" in body["detail"] and len(body["detail"]) < 200


@pytest.mark.parametrize("pipeline", [False, True], ids=["bare", "pipeline"])
@pytest.mark.parametrize("kind_id", list(ESTIMATORS))
def test_a_skops_file_of_every_kind_uploads_and_predicts_like_the_estimator(client, ci, kind_id, pipeline):
    model, rows, local = fitted(kind_id, pipeline)
    data = skops.io.dumps(model)

    created = post_artifact(client, ci, name="m", data=data, filename="model.skops")
    assert created.status_code == 201, created.get_json()
    assert created.get_json()["kind"] == ESTIMATORS[kind_id][0]

    answer = client.post("/models/m/1/predict", json={"instances": rows})
    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json()["predictions"] == model.predict(local).tolist()
    download = client.get("/models/m/versions/1/artifact", headers=ci)
    assert download.data == data
    assert download.headers["Content-Disposition"].endswith('m-v1.skops"')


def test_a_skops_file_with_a_disallowed_type_is_422_and_nothing_is_stored(app, client, ci):
    from sklearn.svm import SVR

    X, y = classification_data()
    response = post_artifact(client, ci, data=skops.io.dumps(SVR().fit(X, y)), filename="m.skops")

    assert_problem(response, 422, "sklearn.svm._classes.SVR", "docs/artifacts.md")
    assert stored_files(app) == []


def _forest_listing_one_tree(times: int) -> bytes:
    """A forest whose pickle lists one fitted tree ``times`` times (the pickle memo keeps the file small)."""
    X, y = classification_data(n_rows=2000, seed=3)
    forest = RandomForestClassifier(n_estimators=2, random_state=0).fit(X, y)
    forest.estimators_ = [forest.estimators_[0]] * times
    forest.n_estimators = times
    return pickle.dumps(forest, protocol=5)


def test_a_forest_listing_one_tree_twenty_thousand_times_is_413_before_it_grows(client, admin):
    data = _forest_listing_one_tree(20_000)
    assert len(data) < 100 * 1024

    response = post_artifact(client, admin, data=data)

    assert_problem(response, 413, "20,000 trees", "at most 5,000")
    assert client.get("/models/housing").status_code == 404


def test_a_forest_that_would_outgrow_max_model_mb_once_compiled_is_413_naming_it(small_app, admin):
    data = _forest_listing_one_tree(4_000)  # 4,000 listings of one tree: far past 8 MB once compiled

    response = post_artifact(small_app.test_client(), admin, data=data)

    assert_problem(response, 413, "4,000 trees", "once loaded and compiled", "MAX_MODEL_MB")
    assert stored_files(small_app) == []


def test_a_stored_forest_past_the_bound_is_refused_at_load_the_same_way(tmp_path):
    store = LocalStore(tmp_path / "artifacts")
    digest = store.put(_forest_listing_one_tree(20_000))  # stored before the bound existed
    signature = {"features": [{"name": f"x{i}", "dtype": "float64"} for i in range(4)], "classes": [0, 1]}
    loader = ArtifactLoader(store, max_model_bytes=8 * MIB)

    with pytest.raises(ArtifactTooLarge, match="20,000 trees"):
        loader(VersionInfo("housing", 1, digest, "classification", signature))


# ---- widths: what a model says it takes is checked against the arrays it holds ------------------

def _tree_claiming(model, n_features: int):
    """``model`` (a fitted tree) with its tree rebuilt to say it takes ``n_features`` features."""
    from sklearn.tree._tree import Tree

    tree = Tree(n_features, model.tree_.n_classes, model.tree_.n_outputs)
    tree.__setstate__(model.tree_.__getstate__())
    model.tree_, model.n_features_in_ = tree, n_features
    return model


def test_a_linear_model_claiming_three_million_features_is_413_naming_max_features(client, admin):
    data = wide_claim_linear(3_000_000)
    assert len(data) < 1024

    response = post_artifact(client, admin, data=data)

    assert_problem(response, 413, "3,000,000 features", "at most 10,000", "MAX_FEATURES", "docs/artifacts.md")
    assert client.get("/models/housing").status_code == 404


def test_a_tree_whose_arrays_agree_on_a_width_past_max_features_is_413(client, admin):
    model = _tree_claiming(DecisionTreeRegressor(max_depth=3).fit(*regression_data()), 20_000)

    response = post_artifact(client, admin, data=pickle.dumps(model, protocol=5))

    assert_problem(response, 413, "20,000 features", "MAX_FEATURES")


def test_max_features_is_configured(build_app, admin):
    app = build_app(MAX_FEATURES=3)

    response = post_artifact(app.test_client(), admin, data=pickle.dumps(Ridge().fit(*regression_data()), protocol=5))

    assert_problem(response, 413, "4 features", "at most 3", "MAX_FEATURES")


def _lying(kind: str):
    """A fitted model whose n_features_in_ (or a part's) disagrees with the arrays it holds."""
    X, y = regression_data()
    if kind == "linear":
        model = Ridge().fit(X, y)
        model.n_features_in_ = 9
    elif kind == "names":
        import pandas as pd

        model = Ridge().fit(pd.DataFrame(X, columns=list("abcd")), y)
        model.feature_names_in_ = np.array([f"f{i}" for i in range(5000)], dtype=object)
    elif kind == "tree":
        model = DecisionTreeRegressor(max_depth=3).fit(X, y)
        model.n_features_in_ = 9
    elif kind == "forest":
        model = RandomForestRegressor(n_estimators=3, max_depth=3, random_state=0).fit(X, y)
        _tree_claiming(model.estimators_[1], 9)
    elif kind == "scaler":
        model = make_pipeline(StandardScaler(), Ridge()).fit(X, y)
        model.steps[0][1].n_features_in_ = 9
    elif kind == "chain":
        model = make_pipeline(StandardScaler(), Ridge()).fit(X, y)
        model.steps[1][1].coef_ = np.ones(7)
        model.steps[1][1].n_features_in_ = 7
    return model


@pytest.mark.parametrize("kind", ["linear", "names", "tree", "forest", "scaler", "chain"])
def test_a_model_whose_width_disagrees_with_its_arrays_is_422_naming_both(client, admin, kind):
    response = post_artifact(client, admin, data=pickle.dumps(_lying(kind), protocol=5))

    body = assert_problem(response, 422, "features")
    assert len(body["detail"]) < 300
    assert client.get("/models/housing").status_code == 404


def test_a_skops_file_claiming_a_width_past_max_features_is_413(client, admin):
    model = pickle.loads(wide_claim_linear(50_000))

    response = post_artifact(client, admin, data=skops.io.dumps(model), filename="m.skops")

    assert_problem(response, 413, "50,000 features", "MAX_FEATURES")


def test_a_stored_model_whose_width_disagrees_with_its_arrays_is_refused_at_load(tmp_path):
    store = LocalStore(tmp_path / "artifacts")
    digest = store.put(wide_claim_linear(3_000_000))  # stored before the check existed
    signature = {"features": [{"name": f"x{i}", "dtype": "float64"} for i in range(3)], "classes": None}

    with pytest.raises(InvalidArtifact, match="3,000,000 features"):
        ArtifactLoader(store, max_model_bytes=8 * MIB)(VersionInfo("housing", 1, digest, "regression", signature))
