"""The compiled trees answer exactly what scikit-learn answers, bit for bit, on random models and awkward rows.

Every case is drawn from a fixed seed (reproducible, no shrinking needed to read a failure): a tree or
forest of random shape fitted on data with ties, negative zero and extremes, then 1,000 rows holding
its own thresholds, their float32 neighbours and values past float32's range. scikit-learn is called as
the registry calls it: ``n_jobs=1`` semantics (sequential) and ``assume_finite=True``.
"""
import numpy as np
import pytest
import sklearn
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import ExtraTreesRegressor, RandomForestClassifier, RandomForestRegressor
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from registry.inference import fast_trees
from registry.inference.fast_trees import CompiledTrees, compile_trees
from registry.inference.tree_walk import InvalidNodes
from registry.inference.predictors import TreePredictor, predictor_for

CASES = 240
ROWS = 1000
F32_MAX = float(np.finfo(np.float32).max)
EXTREMES = np.array([0.0, -0.0, 1e38, -1e38, F32_MAX, -F32_MAX, 1e-45, -1e-45, 1e-38])
PAST_FLOAT32 = np.array([3.5e38, -3.5e38, 1e300, -1e300])  # become ±inf when cast, as in scikit-learn
LABELS = {
    "int": np.array([3, -1, 7, 0, 12]),
    "str": np.array(["yes", "no", "maybe", "b", "a"]),
    "float": np.array([2.0, -1.0, 1e9, -0.0, 3.0]),
}


def random_model(seed: int):
    """A fitted tree or forest of a kind, task and shape chosen by ``seed``, and its training rows."""
    rng = np.random.default_rng(seed)
    forest, classify = seed % 2 == 0, seed % 4 >= 2
    X = training_rows(rng)
    shape = {
        "max_depth": rng.choice([None, None, 1, 2, 4, 8]),
        "min_samples_leaf": int(rng.choice([1, 1, 2, 5, 20])),
        "max_features": rng.choice([None, "sqrt", 0.5]),
        "random_state": seed,
    }
    if rng.random() < 0.2:
        shape["max_leaf_nodes"] = int(rng.integers(2, 30))
    if forest:
        shape |= {"n_estimators": int(rng.integers(1, 16)), "bootstrap": bool(rng.random() < 0.7), "n_jobs": 1}
    if classify:
        labels = LABELS[rng.choice(list(LABELS))][: int(rng.choice([2, 2, 3, 5]))]
        y = labels[((X[:, 0] > np.median(X[:, 0])) + rng.integers(0, len(labels), len(X))) % len(labels)]
        shape["criterion"] = rng.choice(["gini", "entropy", "log_loss"])
        if rng.random() < 0.2:
            shape["class_weight"] = "balanced"
        model = (RandomForestClassifier if forest else DecisionTreeClassifier)(**shape)
    else:
        scale = 10.0 ** rng.integers(-3, 12, size=len(X))
        y = np.where(rng.random(len(X)) < 0.1, -0.0, rng.normal(size=len(X)) * scale)
        shape["criterion"] = rng.choice(["squared_error", "absolute_error"])
        model = (RandomForestRegressor if forest else DecisionTreeRegressor)(**shape)
    with np.errstate(all="ignore"):  # impurities of ±float32 max overflow while fitting; not our concern
        return model.fit(X, y), X


def training_rows(rng) -> np.ndarray:
    """Columns of plain normals, of few repeated values (ties), and of extremes and signed zeros."""
    n_rows, n_features = int(rng.integers(20, 200)), int(rng.integers(1, 7))
    columns = []
    for _ in range(n_features):
        kind = rng.integers(0, 3)
        if kind == 0:
            columns.append(rng.normal(size=n_rows) * 10.0 ** rng.integers(-5, 6))
        elif kind == 1:
            columns.append(rng.integers(-3, 4, size=n_rows).astype(float))
        else:
            columns.append(rng.choice(np.concatenate([EXTREMES, rng.normal(size=4)]), size=n_rows))
    return np.column_stack(columns)


def awkward_rows(rng, model, X: np.ndarray) -> np.ndarray:
    """1,000 rows mixing training rows, new draws, the model's thresholds and their float32 neighbours."""
    trees = getattr(model, "estimators_", [model])
    thresholds = np.concatenate([tree.tree_.threshold[tree.tree_.children_left != -1] for tree in trees] + [[0.0]])
    as32 = thresholds.astype(np.float32)
    candidates = np.concatenate([
        thresholds, as32, np.nextafter(as32, np.float32(np.inf)), np.nextafter(as32, np.float32(-np.inf)),
        np.nextafter(thresholds, np.inf), np.nextafter(thresholds, -np.inf), EXTREMES, PAST_FLOAT32, X.ravel(),
    ])
    rows = rng.choice(candidates, size=(ROWS, X.shape[1]))
    from_training = rng.random(ROWS) < 0.3
    rows[from_training] = X[rng.integers(0, len(X), from_training.sum())]
    return rows


def scikit_learn(method, rows):
    """scikit-learn's answer, called as the registry calls it (finiteness assumed: rows were checked)."""
    with np.errstate(over="ignore"), sklearn.config_context(assume_finite=True):
        return method(rows)


def compiled(method, rows):
    with np.errstate(over="ignore"):
        return method(rows)


def assert_identical(ours, theirs):
    """Same dtype, shape and bits (so -0.0 differs from 0.0, unlike with ==)."""
    assert ours.dtype == theirs.dtype and ours.shape == theirs.shape
    assert np.array_equal(ours, theirs)
    if ours.dtype.kind == "f":
        assert np.array_equal(np.signbit(ours), np.signbit(theirs))


@pytest.mark.parametrize("seed", range(CASES))
def test_compiled_trees_answer_exactly_what_scikit_learn_answers(seed):
    model, X = random_model(seed)
    rows = awkward_rows(np.random.default_rng(10_000 + seed), model, X)
    fast = compile_trees(model)
    # One batch (eight rows of a tree at once, the GIL let go), small batches, single rows (eight trees
    # at once) and a batch that leaves lanes empty at the end.
    pieces = [rows, rows[:50], rows[50:51], rows[999:], rows[:13]]
    for piece in pieces:
        assert_identical(compiled(fast.predict, piece), scikit_learn(model.predict, piece))
        if hasattr(model, "classes_"):
            assert_identical(compiled(fast.predict_proba, piece), scikit_learn(model.predict_proba, piece))
            # One walk for both (what a request or batch asking for probabilities runs): the same answers.
            labels, proba = compiled(fast.predict_and_proba, piece)
            assert_identical(labels, scikit_learn(model.predict, piece))
            assert_identical(proba, scikit_learn(model.predict_proba, piece))
    for size in (40, 1):  # small batches, and single rows
        walked = np.concatenate([compiled(fast.predict, rows[i:i + size]) for i in range(0, ROWS, size)])
        assert_identical(walked, scikit_learn(model.predict, rows))
        if hasattr(model, "classes_"):
            walked = np.concatenate([compiled(fast.predict_proba, rows[i:i + size]) for i in range(0, ROWS, size)])
            assert_identical(walked, scikit_learn(model.predict_proba, rows))


def test_a_pipeline_with_string_labels_runs_its_steps_then_the_compiled_forest():
    rng = np.random.default_rng(7)
    X = np.column_stack([rng.normal(size=300), rng.integers(0, 4, 300).astype(float), rng.normal(size=300) * 1e6])
    y = np.array(["cat", "dog", "emu"])[(X[:, 0] > 0).astype(int) + (X[:, 1] > 2)]
    columns = ColumnTransformer([("scale", StandardScaler(), [0, 2]), ("code", OneHotEncoder(), [1])])
    model = Pipeline([("prepare", columns), ("skip", "passthrough"), ("forest", RandomForestClassifier(20, random_state=0))])
    model.fit(X, y)
    predictor = predictor_for(model)
    rows = awkward_rows(rng, model.steps[-1][1], X)[:, :3]
    rows[:, 1] = rng.integers(0, 4, ROWS)
    assert isinstance(predictor, TreePredictor)
    for piece in (rows, rows[:30], rows[5:6]):
        assert_identical(compiled(predictor.predict, piece), scikit_learn(model.predict, piece))
        assert_identical(compiled(predictor.predict_proba, piece), scikit_learn(model.predict_proba, piece))
        labels, proba = compiled(predictor.predict_and_proba, piece)  # the steps run once, the trees walked once
        assert_identical(labels, scikit_learn(model.predict, piece))
        assert_identical(proba, scikit_learn(model.predict_proba, piece))


@pytest.mark.parametrize("model", [
    RandomForestRegressor(n_estimators=3, random_state=0),
    DecisionTreeClassifier(random_state=0),
    ExtraTreesRegressor(n_estimators=3, random_state=0),
], ids=["multi-output-forest", "multi-output-tree", "extra-trees"])
def test_models_the_compiler_does_not_cover_are_served_by_the_estimator_itself(model):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 3))
    model.fit(X, np.column_stack([X[:, 0] > 0, X[:, 1] > 0]).astype(int))
    assert compile_trees(model) is None
    assert predictor_for(model) is model


@pytest.mark.parametrize("seen_nan", [True, False], ids=["fitted-with-nan", "fitted-without"])
def test_rows_with_nan_go_where_scikit_learn_sends_them(seen_nan):
    rng = np.random.default_rng(3)
    X = rng.normal(size=(400, 3))
    if seen_nan:
        X[rng.random((400, 3)) < 0.1] = np.nan
    y = np.nan_to_num(X[:, 0]) + (X[:, 1] > 0)
    model = RandomForestRegressor(n_estimators=10, random_state=0).fit(X, y)
    rows = rng.normal(size=(300, 3))
    rows[rng.random((300, 3)) < 0.2] = np.nan
    fast = compile_trees(model)
    for piece in (rows, rows[:40], rows[7:8]):
        assert_identical(compiled(fast.predict, piece), scikit_learn(model.predict, piece))


def test_a_state_with_a_walk_that_would_leave_the_nodes_or_never_end_is_refused():
    rng = np.random.default_rng(4)
    X = rng.normal(size=(300, 4))
    model = RandomForestClassifier(n_estimators=3, random_state=0).fit(X, X[:, 0] > 0)
    state = compile_trees(model).__getstate__()
    inner = int(np.flatnonzero(state["nodes"]["child"][:, 0] != np.arange(len(state["nodes"])))[0])
    damages = {
        "a child past the nodes": ("nodes", lambda nodes: nodes["child"].__setitem__((inner, 1), len(nodes))),
        "a child back to its parent": ("nodes", lambda nodes: nodes["child"].__setitem__((inner + 1, 0), inner)),
        "a column past the model's": ("nodes", lambda nodes: nodes["feature"].__setitem__(inner, 4)),
        "a root past the nodes": ("roots", lambda roots: roots.__setitem__(1, 1 << 30)),
    }
    for why, (name, damage) in damages.items():
        damaged = {**state, name: state[name].copy()}
        damage(damaged[name])
        with pytest.raises(InvalidNodes):
            CompiledTrees(**damaged)
            pytest.fail(why)
    with pytest.raises(InvalidNodes):
        CompiledTrees(**{**state, "roots": state["roots"].astype(np.int64)})
    assert_identical(CompiledTrees(**state).predict_proba(X), model.predict_proba(X))


def test_a_nan_goes_where_its_node_says_even_in_a_column_without_one_in_training():
    X = np.array([[0.0, 1.0], [1.0, 0.0], [2.0, 1.0], [3.0, 0.0]] * 10)
    model = DecisionTreeRegressor(random_state=0).fit(X, X[:, 0])
    rows = np.array([[np.nan, 0.0], [np.nan, np.nan], [1.5, np.nan]])
    assert_identical(compiled(compile_trees(model).predict, rows), scikit_learn(model.predict, rows))


def test_a_forest_past_the_walkers_node_ids_is_served_by_the_estimator_itself(monkeypatch):
    X = np.random.default_rng(5).normal(size=(200, 3))
    model = RandomForestRegressor(n_estimators=4, random_state=0).fit(X, X[:, 0])
    monkeypatch.setattr(fast_trees, "MAX_NODES", sum(tree.tree_.node_count for tree in model.estimators_) - 1)
    assert compile_trees(model) is None
    assert predictor_for(model) is model
