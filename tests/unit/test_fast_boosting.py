"""Compiled boosted models answer exactly what scikit-learn answers, bit for bit, on random models and awkward rows.

Every case is drawn from a fixed seed: a HistGradientBoosting or GradientBoosting model of random task,
loss, shape, categorical columns and early stopping, fitted on data with ties, missing values, signed
zeros and extremes, then rows holding its own thresholds and their neighbours (float64 and float32),
NaN, ±inf, subnormals, categories never seen and values no category has. scikit-learn is called as the
registry calls it (``assume_finite=True``).
"""
import functools

import numpy as np
import pytest
import sklearn
from sklearn.ensemble import (
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
)
from sklearn.linear_model import LinearRegression

from registry.inference.fast_boosting import CompiledBoosting, compile_boosting
from registry.inference.predictors import TreePredictor
from registry.inference.tree_walk import CATEGORICAL, InvalidNodes, NodesDamaged
from tests.unit.test_fast_trees import assert_identical

CASES = 200
ROWS = 600
SPECIALS = np.array([0.0, -0.0, np.nan, np.inf, -np.inf, 5e-324, -5e-324, 1e-310, 1e-45, 3.5e38, -3.5e38, 1e300])
LABELS = [np.array([3, -1, 7, 0, 12, 5, 9, 2, 8, 4]), np.array(list("abcdefghij"))]


@functools.cache
def random_model(seed: int):
    """A fitted boosted model of a kind, task and shape chosen by ``seed``; its training rows (read-only)
    and categorical columns. Fitted once per run: the tests that draw the same seed share it."""
    rng = np.random.default_rng(seed)
    histogram, classify = seed % 2 == 0, seed % 4 >= 2
    n_rows, n_features = int(rng.integers(60, 300)), int(rng.integers(1, 6))
    categorical = [j for j in range(n_features) if histogram and rng.random() < 0.3]
    columns = []
    for j in range(n_features):
        if j in categorical:
            column = rng.choice(rng.permutation(np.arange(-2.0, 40.0))[: int(rng.integers(2, 30))], size=n_rows)
        elif rng.random() < 0.4:
            column = rng.integers(-3, 4, size=n_rows).astype(float)
        else:
            column = rng.normal(size=n_rows) * 10.0 ** rng.integers(-4, 5)
        if histogram and rng.random() < 0.4:
            column[rng.random(n_rows) < 0.15] = np.nan
        columns.append(column)
    X = np.column_stack(columns)
    signal = np.nan_to_num(X[:, 0]) + (np.nan_to_num(X[:, -1]) % 3 if categorical else 0)
    shape = {"random_state": seed}
    if histogram:
        shape |= {"max_iter": int(rng.integers(1, 40)), "max_depth": rng.choice([None, 2, 3, 6]),
                  "max_leaf_nodes": int(rng.choice([3, 8, 31])), "min_samples_leaf": int(rng.choice([1, 5, 20])),
                  "learning_rate": float(rng.choice([0.1, 0.3, 1.0])),
                  "max_bins": 255 if categorical else int(rng.choice([8, 255]))}
        if categorical:
            shape["categorical_features"] = categorical
        if rng.random() < 0.3:
            shape |= {"early_stopping": True, "n_iter_no_change": 2, "validation_fraction": 0.2}
    else:
        shape |= {"n_estimators": int(rng.integers(1, 30)), "max_depth": int(rng.choice([1, 2, 3, 5])),
                  "learning_rate": float(rng.choice([0.1, 0.37, 1.0])), "subsample": float(rng.choice([1.0, 0.7]))}
        if rng.random() < 0.2:
            shape["init"] = "zero"
        if rng.random() < 0.2:
            shape |= {"n_iter_no_change": 2, "validation_fraction": 0.2}
    if classify:
        labels = LABELS[int(rng.integers(0, 2))][: int(rng.choice([2, 2, 3, 9]))]
        y = labels[((signal > np.median(signal)) * 2 + rng.integers(0, len(labels), n_rows)) % len(labels)]
        if not histogram and len(labels) == 2 and rng.random() < 0.3:
            shape["loss"] = "exponential"
        model = (HistGradientBoostingClassifier if histogram else GradientBoostingClassifier)(**shape)
    else:
        y = signal * 10.0 ** rng.integers(-2, 4) + rng.normal(size=n_rows)
        if histogram:
            shape["loss"] = rng.choice(["squared_error", "absolute_error", "poisson", "gamma", "quantile"])
            if shape["loss"] in ("poisson", "gamma"):
                y = np.abs(y) + 0.5
            if shape["loss"] == "quantile":
                shape["quantile"] = 0.8
        else:
            shape["loss"] = rng.choice(["squared_error", "absolute_error", "huber", "quantile"])
        model = (HistGradientBoostingRegressor if histogram else GradientBoostingRegressor)(**shape)
    with np.errstate(all="ignore"):
        model.fit(X if histogram else np.nan_to_num(X), y)
    X.setflags(write=False)
    return model, X, categorical


def thresholds(model) -> np.ndarray:
    if hasattr(model, "_predictors"):
        nodes = np.concatenate([p.nodes for iteration in model._predictors for p in iteration])
        return nodes["num_threshold"][(nodes["is_leaf"] == 0) & (nodes["is_categorical"] == 0)]
    trees = [tree.tree_ for tree in model.estimators_.ravel()]
    return np.concatenate([tree.threshold[tree.children_left != -1] for tree in trees])


def awkward_rows(rng, model, X: np.ndarray, categorical: list) -> np.ndarray:
    """Rows mixing training rows, the model's thresholds and their float64 and float32 neighbours,
    special values, and for categorical columns their categories, others never seen, and no categories."""
    found = np.concatenate([thresholds(model), [0.0]])
    as32 = found.astype(np.float32).astype(np.float64)
    candidates = np.concatenate([
        found, np.nextafter(found, np.inf), np.nextafter(found, -np.inf), as32,
        np.nextafter(as32.astype(np.float32), np.float32(np.inf)).astype(np.float64),
        np.nextafter(as32.astype(np.float32), np.float32(-np.inf)).astype(np.float64),
        SPECIALS, X[~np.isnan(X)].ravel(),
    ])
    rows = rng.choice(candidates, size=(ROWS, X.shape[1]))
    for j in categorical:
        seen = np.unique(X[:, j])
        never_seen = [-1.0, 41.0, 255.0, 256.0, 1e9, 2.5, -0.0, np.nan, np.inf]
        rows[:, j] = rng.choice(np.concatenate([seen, seen, never_seen]), size=ROWS)
    from_training = rng.random(ROWS) < 0.25
    rows[from_training] = X[rng.integers(0, len(X), from_training.sum())]
    return rows


def scikit_learn(method, rows):
    with np.errstate(all="ignore"), sklearn.config_context(assume_finite=True):
        return method(rows)


def compiled(method, rows):
    with np.errstate(all="ignore"):
        return method(rows)


@pytest.mark.parametrize("seed", range(CASES))
def test_compiled_boosting_answers_exactly_what_scikit_learn_answers(seed):
    model, X, categorical = random_model(seed)
    rows = awkward_rows(np.random.default_rng(10_000 + seed), model, X, categorical)
    if not hasattr(model, "_predictors"):
        rows = np.nan_to_num(rows, nan=0.5)  # GradientBoosting refuses NaN (so does the API, for every kind)
    fast = compile_boosting(model)
    assert fast is not None
    # A batch (eight rows of a tree at once, the GIL let go), small batches, single rows (eight trees at once).
    for piece in (rows, rows[:50], rows[50:51], rows[-3:]):
        assert_identical(compiled(fast.predict, piece), scikit_learn(model.predict, piece))
        if hasattr(model, "classes_"):
            assert_identical(compiled(fast.predict_proba, piece), scikit_learn(model.predict_proba, piece))
            # Through the predictor the server calls, which asks for both at once.
            labels, proba = compiled(TreePredictor([], fast).predict_and_proba, piece)
            assert_identical(labels, scikit_learn(model.predict, piece))
            assert_identical(proba, scikit_learn(model.predict_proba, piece))
    walked = np.concatenate([compiled(fast.predict, rows[i:i + 1]) for i in range(0, 100)])
    assert_identical(walked, scikit_learn(model.predict, rows[:100]))


def test_every_case_family_is_drawn():
    """The seeds cover each kind, task, categorical columns, missing values and early stopping."""
    drawn = set()
    for seed in range(CASES):
        model, X, categorical = random_model(seed)
        drawn.add(type(model).__name__)
        drawn |= {"categorical"} if categorical else set()
        drawn |= {"missing"} if np.isnan(X).any() and hasattr(model, "_predictors") else set()
        drawn |= {"early-stopped"} if getattr(model, "n_iter_no_change", None) and (
            getattr(model, "early_stopping", True) is True) else set()
        drawn |= {"multiclass"} if len(getattr(model, "classes_", [])) > 8 else set()
    assert drawn >= {"HistGradientBoostingClassifier", "HistGradientBoostingRegressor", "GradientBoostingClassifier",
                     "GradientBoostingRegressor", "categorical", "missing", "early-stopped", "multiclass"}


def test_an_init_estimator_of_ones_own_is_not_compiled():
    X = np.random.default_rng(0).normal(size=(100, 3))
    model = GradientBoostingRegressor(n_estimators=3, init=LinearRegression()).fit(X, X[:, 0])
    assert compile_boosting(model) is None


def categorical_model():
    model, X, categorical = random_model(next(s for s in range(0, 400, 2) if random_model(s)[2]))
    return model, X


def test_a_state_with_a_walk_that_would_leave_its_arrays_is_refused_when_made():
    model, X = categorical_model()
    state = compile_boosting(model).__getstate__()
    categorical = np.flatnonzero(state["nodes"]["feature"] & CATEGORICAL)
    inner = int(np.flatnonzero(state["nodes"]["child"][:, 0] != np.arange(len(state["nodes"])))[0])
    damages = {
        "a child past the nodes": ("nodes", lambda a: a["child"].__setitem__((inner, 1), len(a))),
        "a column past the model's": ("nodes", lambda a: a["feature"].__setitem__(inner, 1000)),
        "a set past the bitsets": ("nodes", lambda a: a["bitset"].__setitem__(categorical[0], len(state["bitsets"]))),
        "an output past the model's": ("columns", lambda a: a.__setitem__(0, len(state["baseline"]))),
        "a root past the nodes": ("roots", lambda a: a.__setitem__(0, 1 << 30)),
        "a categorical column past the model's": ("categorical_columns", lambda a: a.__setitem__(0, 99)),
    }
    for why, (name, damage) in damages.items():
        damaged = {**state, name: state[name].copy()}
        damage(damaged[name])
        with pytest.raises(InvalidNodes):
            CompiledBoosting(**damaged)
            pytest.fail(why)
    with pytest.raises(InvalidNodes):
        CompiledBoosting(**{**state, "value": state["value"][:-1]})
    assert_identical(CompiledBoosting(**state).predict(X), model.predict(X))


@pytest.mark.parametrize("what", ["bitset", "column", "child"])
@pytest.mark.parametrize("rows", [1, 300], ids=["one-row", "batch"])
def test_records_damaged_after_the_walker_was_made_raise_nodes_damaged(what, rows):
    model, X = categorical_model()
    fast = compile_boosting(model)
    saved = fast.nodes.copy(), fast.columns.copy()
    categorical = np.flatnonzero(fast.nodes["feature"] & CATEGORICAL)
    if what == "bitset":
        fast.nodes["bitset"][categorical] = 2**32 - 1
    elif what == "column":
        fast.columns[:] = 2**31 - 1
    else:
        fast.nodes["child"][categorical] = 2**31 - 1
    rows_ = np.repeat(X[:1], rows, axis=0) if what != "column" else X[:rows].copy()
    rows_[:, fast.categorical_columns] = fast.categories[0][0]  # a known category: its split reads the set
    with pytest.raises(NodesDamaged, match="the node records changed since they were checked"):
        fast.predict(rows_)
    fast.nodes[:], fast.columns[:] = saved
    assert_identical(fast.predict(X), model.predict(X))
