"""LightGBM models explained exactly (issue 43): path-dependent TreeSHAP over the compiled records, weighted by
the file's ``internal_count`` and ``leaf_count``, deciding every split as the walker does (records.h:
``wide_goes_left``). The oracles are LightGBM itself (``Booster.predict(pred_contrib=True)``, its own TreeSHAP,
and ``raw_score=True``) and shap's TreeExplainer, on models with every missing type, zero_as_missing,
use_missing=False and categorical sets past 255, over rows with NaN, zeros, values within kZeroThreshold,
infinities and unseen, negative and fractional categories."""
import copy
import functools
import re
import warnings
import zlib

import numpy as np
import pytest

from registry.artifacts.loading.lightgbm_files import read_lightgbm
from registry.errors import InvalidArtifact
from registry.inference.tree_shap import NotExplainable
from registry.inference.tree_walk import CATEGORICAL, NodesDamaged

lgb = pytest.importorskip("lightgbm")
shap = pytest.importorskip("shap")

ZERO = float(np.float32(1e-35))  # LightGBM's kZeroThreshold
UNUSED = 5  # a constant column: no tree can split on it
# name: (objective's parameters, how the labels are made from the signal)
OBJECTIVES = {
    "binary": ({"objective": "binary"}, lambda s: (s > np.median(s)).astype(float)),
    "multiclass": ({"objective": "multiclass", "num_class": 3}, lambda s: np.digitize(s, np.quantile(s, [1 / 3, 2 / 3]))),
    "regression": ({"objective": "regression"}, lambda s: s),
    "multiclassova": ({"objective": "multiclassova", "num_class": 3},
                      lambda s: np.digitize(s, np.quantile(s, [1 / 3, 2 / 3]))),
    "poisson": ({"objective": "poisson"}, lambda s: np.exp(s / 3)),
    "cross_entropy": ({"objective": "cross_entropy"}, lambda s: 1 / (1 + np.exp(-s))),
}
# The missing-value settings: each makes other node types (decision_type) and other walks for NaN and zeros.
MISSING = {
    "nan-and-none": {},
    "zero-as-missing": {"zero_as_missing": True},
    "no-missing": {"use_missing": False},
}


@functools.cache
def _model(objective: str, missing: str) -> tuple[str, np.ndarray]:
    """The text of a model trained on NaN (column 0), many zeros (1), tiny values (3), a categorical column of
    600 categories (2, one-vs-rest sets longer than one 256-bit block) and a constant column; its rows."""
    rng = np.random.default_rng(zlib.crc32(f"{objective}/{missing}".encode()))
    n = 1500
    X = rng.normal(size=(n, 6))
    X[:, 2] = rng.integers(0, 600, n)
    X[rng.random(n) < 0.2, 0] = np.nan
    X[rng.random(n) < 0.3, 1] = 0.0
    X[rng.random(n) < 0.2, 3] = rng.choice([ZERO, -ZERO, 1e-36, -1e-40, 0.0], size=1)
    X[:, UNUSED] = 1.0
    signal = X[:, 1] + (X[:, 2] % 3 == 0) + np.nan_to_num(X[:, 0]) + (X[:, 3] > 0) + 0.3 * rng.normal(size=n)
    parameters, labels = OBJECTIVES[objective]
    params = {**parameters, "num_leaves": 24, "learning_rate": 0.2, "min_data_in_leaf": 5, "min_data_per_group": 5,
              "cat_smooth": 1.0, "max_cat_to_onehot": 1, "max_cat_threshold": 200, "verbose": -1, "num_threads": 1,
              "deterministic": True, **MISSING[missing]}
    booster = lgb.train(params, lgb.Dataset(X, labels(signal), categorical_feature=[2]), 12)
    return booster.model_to_string(), X


def _rows(text: str, X: np.ndarray, seed: int = 0) -> np.ndarray:
    """Training rows, then rows of awkward values: NaN, ±0, values within kZeroThreshold of zero and just past
    it, ±inf, every threshold and its neighbours, unseen categories past every set, negative and fractional
    ones."""
    rng = np.random.default_rng(seed)
    thresholds = np.array([float(t) for line in re.findall(r"^threshold=(.*)$", text, re.M)
                           for t in line.split()] or [0.0])
    ties = np.concatenate([thresholds, np.nextafter(thresholds, np.inf), np.nextafter(thresholds, -np.inf)])
    odd = [np.nan, np.inf, -np.inf, 0.0, -0.0, ZERO, -ZERO, np.nextafter(ZERO, 1), -np.nextafter(ZERO, 1), 1e-36,
           -1e-40, 1e-310, -0.5, -1.0, -3.0, 0.5, 255.0, 255.5, 256.0, 511.0, 599.9, 700.0, 1e4, 2.0**31, 1e300]
    fresh = rng.choice(np.concatenate([ties, odd]), size=(150, X.shape[1]))
    categories = rng.integers(-3, 800, (80, 1)) + rng.choice([0.0, 0.5, -0.5], (80, 1))
    mixed = np.concatenate([rng.normal(size=(80, 2)), categories, rng.normal(size=(80, 3))], axis=1)
    return np.concatenate([X[:120], fresh, mixed])


def _contributions(text: str, rows: np.ndarray, n_outputs: int) -> np.ndarray:
    """LightGBM's own TreeSHAP: (rows, outputs, features + 1), the last column each output's expected value."""
    contributions = lgb.Booster(model_str=text).predict(rows, pred_contrib=True)
    return np.asarray(contributions).reshape(len(rows), n_outputs, -1)


def _as_contributions(base: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Ours in LightGBM's layout: (rows, outputs, features + 1)."""
    rows = values.shape[0]
    return np.concatenate([values.transpose(0, 2, 1), np.broadcast_to(base[None, :, None], (rows, len(base), 1))],
                          axis=2)


CASES = [(objective, missing) for objective in ("binary", "multiclass", "regression") for missing in MISSING]
CASES += [(objective, "nan-and-none") for objective in ("multiclassova", "poisson", "cross_entropy")]


def test_the_models_hold_what_the_split_rules_are_for():
    """Between them the models hold categorical splits whose sets span several blocks, and nodes of every
    missing type (None, Zero, NaN) sending missing values each way."""
    texts = [_model(objective, missing)[0] for objective, missing in CASES]
    decisions = {int(d) for text in texts for line in re.findall(r"^decision_type=(.*)$", text, re.M)
                 for d in line.split()}
    assert {d >> 2 for d in decisions} == {0, 1, 2} and any(d & 1 for d in decisions), decisions
    assert {1 << 2, 1 << 2 | 2, 2 << 2, 2 << 2 | 2} <= decisions, decisions  # Zero and NaN, missing right and left
    words = [len(line.split()) for text in texts for line in re.findall(r"^cat_threshold=(.*)$", text, re.M)]
    assert max(words) > 8


@pytest.mark.parametrize("objective, missing", CASES)
def test_values_equal_lightgbms_own_pred_contrib_and_add_up_to_its_raw_score(objective, missing):
    text, X = _model(objective, missing)
    form, _ = read_lightgbm(text.encode())
    rows = _rows(text, X)
    base, values = form.explain(rows)
    n_outputs = len(base)
    assert values.shape == (len(rows), X.shape[1], n_outputs)
    np.testing.assert_allclose(_as_contributions(base, values), _contributions(text, rows, n_outputs), rtol=0,
                               atol=1e-9)
    raw = lgb.Booster(model_str=text).predict(rows, raw_score=True).reshape(len(rows), n_outputs)
    np.testing.assert_allclose(base + values.sum(axis=1), raw, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(form._raw(rows), raw)  # what is explained is what is served


@pytest.mark.parametrize("objective, missing", CASES)
def test_a_column_no_tree_splits_on_gets_exactly_zero(objective, missing):
    text, X = _model(objective, missing)
    _, values = read_lightgbm(text.encode())[0].explain(_rows(text, X))
    assert (values[:, UNUSED, :] == 0).all()
    assert (np.abs(values[:, :4, :]).sum(axis=0) > 0).all()


@pytest.mark.parametrize("objective", ["binary", "multiclass", "regression"])
def test_values_equal_shaps_tree_explainer(objective):
    """shap hands a LightGBM Booster to LightGBM's own TreeSHAP (``pred_contrib``), categorical splits included."""
    text, X = _model(objective, "zero-as-missing")
    rows = _rows(text, X, seed=1)
    base, values = read_lightgbm(text.encode())[0].explain(rows)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        explainer = shap.TreeExplainer(lgb.Booster(model_str=text), feature_perturbation="tree_path_dependent")
        expected = np.asarray(explainer.shap_values(rows))
    np.testing.assert_allclose(values, expected.reshape(values.shape), rtol=0, atol=1e-9)
    np.testing.assert_allclose(base, np.atleast_1d(explainer.expected_value), rtol=0, atol=1e-9)


@pytest.mark.parametrize("objective", ["binary", "regression"])
def test_values_equal_shaps_own_c_tree_shap_where_its_reading_of_lightgbm_follows_lightgbm(objective):
    """shap's own C TreeSHAP (``model_type="internal"``) over its reading of the model's JSON dump, an oracle
    that shares no code with LightGBM's: it follows LightGBM's rules for numeric splits, a NaN going where the
    node says, but not for categorical splits or zero-as-missing, which the models here do not hold."""
    rng = np.random.default_rng(zlib.crc32(objective.encode()))
    X = rng.normal(size=(1000, 4))
    X[rng.random(1000) < 0.2, 0] = np.nan
    signal = X[:, 1] - np.nan_to_num(X[:, 0]) + X[:, 2] * X[:, 3]
    labels = (signal > 0).astype(float) if objective == "binary" else signal
    params = {"objective": objective, "num_leaves": 16, "verbose": -1, "num_threads": 1}
    text = lgb.train(params, lgb.Dataset(X, labels), 10).model_to_string()
    rows = np.concatenate([X[:200], rng.normal(size=(50, 4)) * 3])
    base, values = read_lightgbm(text.encode())[0].explain(rows)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        explainer = shap.TreeExplainer(lgb.Booster(model_str=text), feature_perturbation="tree_path_dependent")
        explainer.model.model_type = "internal"
        expected = np.asarray(explainer.shap_values(rows, check_additivity=False))
    np.testing.assert_allclose(values[:, :, 0], expected, rtol=0, atol=1e-9)
    np.testing.assert_allclose(base, np.atleast_1d(explainer.expected_value), rtol=0, atol=1e-9)


def test_a_model_of_single_leaf_trees_explains_everything_as_its_base_value():
    """A tree with no split has no internal nodes: its leaf's value is its expected value, every value 0."""
    rng = np.random.default_rng(12)
    X, y = rng.normal(size=(100, 3)), rng.normal(size=100)
    text = lgb.train({"objective": "regression", "min_data_in_leaf": 80, "verbose": -1, "num_threads": 1},
                     lgb.Dataset(X, y), 3).model_to_string()
    assert "num_leaves=1\n" in text and "internal_count=\n" in text
    base, values = read_lightgbm(text.encode())[0].explain(X[:10])
    assert (values == 0).all()
    np.testing.assert_allclose(_as_contributions(base, values), _contributions(text, X[:10], 1), rtol=0, atol=1e-12)
    uncounted = re.sub(r"^leaf_count=.*\n", "", re.sub(r"^tree_sizes=.*\n", "", text, flags=re.M), flags=re.M)
    assert read_lightgbm(uncounted.encode())[0].explain(X[:10])[0] == base  # a single leaf needs no count


def _edited(text: str, key: str, change) -> str:
    """``text`` without tree_sizes, its first tree's ``key=`` line changed by ``change`` (of its list of values)."""
    text = re.sub(r"^tree_sizes=.*\n", "", text, flags=re.M)
    line = re.search(rf"^{key}=(.*)$", text, re.M)
    return text[:line.start(1)] + " ".join(change(line.group(1).split(" "))) + text[line.end(1):]


@pytest.mark.parametrize("edit", [
    lambda t: re.sub(r"^internal_count=.*\n", "", t, count=1, flags=re.M),
    lambda t: re.sub(r"^leaf_count=.*\n", "", t, count=1, flags=re.M),
    lambda t: _edited(t, "internal_count", lambda v: [str(int(v[0]) + 1)] + v[1:]),
    lambda t: _edited(t, "leaf_count", lambda v: v[:-1] + [str(int(v[-1]) + 1)]),
], ids=["no-internal-count", "no-leaf-count", "root-count-off-by-one", "leaf-count-off-by-one"])
def test_a_file_without_counts_that_add_up_is_served_but_not_explained(edit):
    """LightGBM reads missing counts as zeros (its own contributions are then NaN), and its expected value is a
    sum over the leaves, which counts that do not add up make other than the one its TreeSHAP explains from:
    neither is explained, never with other numbers; both still predict exactly."""
    text, X = _model("regression", "nan-and-none")
    edited = edit(re.sub(r"^tree_sizes=.*\n", "", text, flags=re.M))
    form, _ = read_lightgbm(edited.encode())
    assert form.cover is None
    np.testing.assert_array_equal(form._raw(X[:50])[:, 0], lgb.Booster(model_str=edited).predict(X[:50]))
    with pytest.raises(NotExplainable, match="holds no node covers"):
        form.explain(X[:5])


@pytest.mark.parametrize("key, change, message", [
    ("internal_count", lambda v: v[1:], "internal_count holds"),
    ("leaf_count", lambda v: v + ["3"], "leaf_count holds"),
    ("leaf_count", lambda v: ["-1"] + v[1:], "not between 0 and 2147483647"),
    ("internal_count", lambda v: ["2147483648"] + v[1:], "not between 0 and 2147483647"),
    ("internal_count", lambda v: ["1.5"] + v[1:], "not a number"),
    ("leaf_count", lambda v: ["nan"] + v[1:], "not a number"),
])
def test_malformed_counts_are_refused_as_every_other_array_is(key, change, message):
    text, _ = _model("regression", "nan-and-none")
    with pytest.raises(InvalidArtifact, match=message):
        read_lightgbm(_edited(text, key, change).encode())


@pytest.mark.parametrize("what", ["set past the bitsets", "set longer than the bitsets"])
def test_a_categorical_set_damaged_after_the_explainer_was_made_raises_nodes_damaged_never_crashes(what):
    text, X = _model("binary", "nan-and-none")
    form = copy.deepcopy(read_lightgbm(text.encode())[0])  # its own arrays, writable
    rows = _rows(text, X)
    form.explain(rows[:2])
    categorical = np.flatnonzero(form.nodes["feature"] & CATEGORICAL)
    if what == "set past the bitsets":
        form.nodes["bitset"][categorical] = len(form.bitsets)
    else:
        form.nodes["threshold"][categorical] = 2.0**31
        rows[:, 2] = 2.0**31 - 1
    with pytest.raises(NodesDamaged):
        form.explain(rows)
