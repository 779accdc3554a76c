"""scikit-learn's boosted models load through the restricted unpickler, are described as ``boosting``, and
files that would make their predict read outside its arrays or call anything else are refused."""
import functools
import io
import pickle

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import (
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
)
from sklearn.linear_model import LinearRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from registry.artifacts.introspect import describe
from registry.artifacts.safe_pickle import load_estimator
from registry.errors import InvalidArtifact, UnsafeArtifact


def data(seed=0, nan=True):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(300, 4))
    if nan:
        X[::7, 1] = np.nan
    X[:, 3] = rng.integers(0, 5, 300)
    return X, ((X[:, 0] > 0) + np.isin(X[:, 3], [1, 3])) % 2, rng.integers(0, 3, 300), X[:, 0] * 2 + X[:, 3]


def models():
    X, y2, y3, yr = data()
    finite = np.nan_to_num(X)
    return {
        "hgb-binary-categorical": HistGradientBoostingClassifier(max_iter=5, categorical_features=[3]).fit(X, y2),
        "hgb-multiclass-early-stopped": HistGradientBoostingClassifier(
            max_iter=50, early_stopping=True, n_iter_no_change=2, random_state=0).fit(X, y3),
        "hgb-regressor-poisson": HistGradientBoostingRegressor(max_iter=5, loss="poisson").fit(X, np.abs(yr)),
        "hgb-pipeline": make_pipeline(StandardScaler(), HistGradientBoostingRegressor(max_iter=5)).fit(X, yr),
        "gb-binary": GradientBoostingClassifier(n_estimators=3, subsample=0.8, random_state=0).fit(finite, y2),
        "gb-multiclass-zero-init": GradientBoostingClassifier(n_estimators=3, init="zero").fit(finite, y3),
        "gb-regressor-huber-early-stopped": GradientBoostingRegressor(
            n_estimators=40, loss="huber", n_iter_no_change=2).fit(finite, yr),
        "gb-pipeline": make_pipeline(StandardScaler(), GradientBoostingRegressor(n_estimators=3)).fit(finite, yr),
    }


MODELS = models()


def dumped(model) -> bytes:
    buffer = io.BytesIO()
    joblib.dump(model, buffer)
    return buffer.getvalue()


@pytest.mark.parametrize("name", MODELS)
def test_a_boosted_model_loads_predicts_as_fitted_and_is_described_as_boosting(name):
    model = MODELS[name]
    loaded = load_estimator(dumped(model)).estimator
    X = np.nan_to_num(data(1)[0]) if "gb-" in name else data(1)[0]

    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    description = describe(loaded)
    assert description.kind == "boosting"
    assert description.task == ("classification" if hasattr(model, "classes_") else "regression")
    assert description.estimator.startswith("sklearn.ensemble.")


def test_a_gradient_boosting_model_with_an_init_estimator_of_its_own_is_refused():
    X, _, _, yr = data(nan=False)
    model = GradientBoostingRegressor(n_estimators=3, init=LinearRegression()).fit(X, yr)

    with pytest.raises(InvalidArtifact, match="init=None"):
        load_estimator(dumped(model))


def damaged(model, damage) -> bytes:
    copy = pickle.loads(pickle.dumps(model))
    damage(copy)
    return dumped(copy)


def _set_node(field, value, node=0):
    def damage(model):
        nodes = model._predictors[0][0].nodes
        inner = int(np.flatnonzero(nodes["is_leaf"] == 0)[node])
        nodes[field][inner] = value
    return damage


def _categorical_bitset_past_the_end(model):
    for iteration in model._predictors:
        nodes = iteration[0].nodes
        found = np.flatnonzero(nodes["is_categorical"] != 0)
        if found.size:
            nodes["bitset_idx"][found[0]] = len(iteration[0].raw_left_cat_bitsets)
            return
    raise AssertionError("no categorical split")


def _stage_child_past_the_end(model):
    tree = model.estimators_[0, 0].tree_
    state = tree.__getstate__()
    state["nodes"]["left_child"][0] = tree.node_count + 5
    tree.__setstate__(state)


@pytest.mark.parametrize("name,damage", [
    ("hgb-binary-categorical", _set_node("left", 10_000)),
    ("hgb-binary-categorical", _set_node("right", 0)),
    ("hgb-binary-categorical", _set_node("feature_idx", 4)),
    ("hgb-binary-categorical", _categorical_bitset_past_the_end),
    ("hgb-multiclass-early-stopped", _set_node("is_categorical", 1)),
    ("gb-binary", _stage_child_past_the_end),
], ids=["child-past-the-end", "child-back-to-root", "column-past-the-row", "bitset-past-the-end",
        "categorical-split-on-a-numeric-column", "stage-child-past-the-end"])
def test_boosted_trees_predict_would_walk_out_of_are_refused(name, damage):
    with pytest.raises(UnsafeArtifact, match="boosted tree|decision tree"):
        load_estimator(damaged(MODELS[name], damage))


def test_a_multiclass_model_missing_a_tree_of_an_iteration_is_refused():
    def damage(model):
        model._predictors[1] = model._predictors[1][:2]

    with pytest.raises(InvalidArtifact, match="one tree per output"):
        load_estimator(damaged(MODELS["hgb-multiclass-early-stopped"], damage))


@pytest.mark.parametrize("func", [print, np.ndarray])
def test_a_partial_of_anything_but_check_array_is_refused(func):
    def damage(model):
        transformer = model._preprocessor.transformers_[1][1]
        transformer.func = functools.partial(func, "owned")

    with pytest.raises(UnsafeArtifact):
        load_estimator(damaged(MODELS["hgb-binary-categorical"], damage))


def test_a_partial_of_check_array_set_to_another_function_when_built_is_refused():
    # partial(check_array), then BUILD with a state naming another callable
    payload = (b"\x80\x04cfunctools\npartial\ncsklearn.utils.validation\ncheck_array\n\x85R"
               b"(cbuiltins\nslice\n)}Ntb.")
    with pytest.raises(UnsafeArtifact, match="functools.partial"):
        load_estimator(payload)


def test_a_random_generator_made_by_calling_anything_but_a_bit_generator_is_refused():
    # __generator_ctor("PCG64", Pipeline): NumPy's legacy path calls the second argument
    payload = (b"\x80\x04cnumpy.random._pickle\n__generator_ctor\nX\x05\x00\x00\x00PCG64"
               b"csklearn.pipeline\nPipeline\n\x86R.")
    with pytest.raises(UnsafeArtifact, match="__generator_ctor"):
        load_estimator(payload)


def test_a_hist_gradient_boosting_models_text_categories_are_object_columns_and_served_by_the_model():
    from registry.inference.predictors import predictor_for

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"size": rng.normal(size=200), "colour": pd.Categorical(rng.choice(["red", "blue"], 200))})
    model = HistGradientBoostingClassifier(max_iter=5).fit(frame, (frame["size"] > 0).astype(int))
    loaded = load_estimator(dumped(model)).estimator

    assert [f.dtype for f in describe(loaded).signature.features] == ["float64", "object"]
    assert predictor_for(loaded) is loaded  # the compiled walk takes numeric categories only


def test_a_generator_restored_into_another_class_is_refused():
    # __pyx_unpickle_SeedSequence(Pipeline, checksum, state): Cython would build the class it is given
    payload = (b"\x80\x04cnumpy.random.bit_generator\n__pyx_unpickle_SeedSequence\ncsklearn.pipeline\nPipeline\n"
               b"K\x00N\x87R.")
    with pytest.raises(UnsafeArtifact, match="__pyx_unpickle_SeedSequence"):
        load_estimator(payload)


def test_a_bit_generator_of_another_class_is_refused():
    payload = b"\x80\x04cnumpy.random._pickle\n__bit_generator_ctor\ncsklearn.pipeline\nPipeline\n\x85R."
    with pytest.raises(UnsafeArtifact, match="__bit_generator_ctor"):
        load_estimator(payload)


def test_one_tree_listed_many_times_counts_every_time(monkeypatch):
    from registry.artifacts.loading import boosting
    from registry.errors import ArtifactTooLarge

    model = pickle.loads(pickle.dumps(MODELS["hgb-regressor-poisson"]))
    model._predictors = [model._predictors[0]] * 50  # one object in the file, fifty trees served

    monkeypatch.setattr(boosting, "MAX_BOOSTED_TREES", 49)
    monkeypatch.setattr("registry.artifacts.loading.checks.MAX_BOOSTED_TREES", 49)
    with pytest.raises(ArtifactTooLarge, match="a boosted model of 50 trees"):
        load_estimator(dumped(model))
    monkeypatch.undo()
    nodes = 50 * len(model._predictors[0][0].nodes)
    with pytest.raises(ArtifactTooLarge, match=f"{nodes:,} nodes in all"):
        load_estimator(dumped(model), max_bytes=nodes * 32 - 1)
