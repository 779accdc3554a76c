"""Path-dependent TreeSHAP over compiled records (native/tree_shap.c): exactly the Shapley values of the
trees' own value function, exactly shap's, adding up to the answer, and never a crash on damaged records."""
import copy
import itertools
import math
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest
from sklearn.ensemble import (
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from registry.artifacts.loading.xgboost_files import read_xgboost
from registry.inference.fast_boosting import compile_boosting
from registry.inference.fast_trees import compile_trees
from registry.inference import tree_shap
from registry.inference.tree_shap import NotExplainable, TreeExplainer
from registry.inference.tree_walk import CATEGORICAL, NAN_LEFT, NODE, WIDE_NODE, BoostedWalker, NodesDamaged, PrivateCopy

shap = pytest.importorskip("shap")
xgboost = pytest.importorskip("xgboost")

RNG = np.random.default_rng(43)
X = RNG.normal(size=(400, 7))
X[:, 6] = 1.0  # a column no tree can split on: its attribution is exactly 0
Y = X[:, 0] + 2 * X[:, 1] * X[:, 2] - X[:, 3] + 0.1 * RNG.normal(size=len(X))
TWO = (Y > 0).astype(int)
THREE = np.digitize(Y, [-1, 1])
ROWS = np.vstack([X[:25], RNG.normal(size=(5, 7)) * 3])
ROWS[-1, 0] = np.nan  # a missing value goes where the node says, and is explained so

SKLEARN = {
    "tree-regressor": lambda: DecisionTreeRegressor(max_depth=7, random_state=0).fit(X, Y),
    "tree-classifier": lambda: DecisionTreeClassifier(max_depth=6, random_state=0).fit(X, THREE),
    "forest-regressor": lambda: RandomForestRegressor(15, max_depth=6, random_state=0).fit(X, Y),
    "forest-classifier": lambda: RandomForestClassifier(15, max_depth=6, random_state=0).fit(X, THREE),
    "hist-regressor": lambda: HistGradientBoostingRegressor(max_iter=15, random_state=0).fit(X, Y),
    "hist-binary": lambda: HistGradientBoostingClassifier(max_iter=15, random_state=0).fit(X, TWO),
    "hist-multiclass": lambda: HistGradientBoostingClassifier(max_iter=10, random_state=0).fit(X, THREE),
    "hist-poisson": lambda: HistGradientBoostingRegressor(loss="poisson", max_iter=10).fit(X, np.exp(Y / 3)),
    "gradient-regressor": lambda: GradientBoostingRegressor(n_estimators=15, random_state=0).fit(X, Y),
    "gradient-binary": lambda: GradientBoostingClassifier(n_estimators=15, random_state=0).fit(X, TWO),
    "gradient-multiclass": lambda: GradientBoostingClassifier(n_estimators=8, random_state=0).fit(X, THREE),
    "gradient-subsampled": lambda: GradientBoostingRegressor(n_estimators=10, subsample=0.5, random_state=0).fit(X, Y),
}
XGBOOST = {
    "xgboost-regressor": ({"objective": "reg:squarederror", "max_depth": 5}, Y),
    "xgboost-binary": ({"objective": "binary:logistic", "max_depth": 4}, TWO),
    "xgboost-multiclass": ({"objective": "multi:softprob", "num_class": 3, "max_depth": 4}, THREE),
}


@pytest.fixture(scope="module")
def models() -> dict:
    """Every kind, fitted once: (the library's model, its compiled form)."""
    fitted = {}
    for name, make in SKLEARN.items():
        model = make()
        fitted[name] = (model, compile_trees(model) or compile_boosting(model))
    for name, (parameters, labels) in XGBOOST.items():
        booster = xgboost.train({**parameters, "seed": 0}, xgboost.DMatrix(X, labels), 12)
        path = Path(tempfile.mkdtemp()) / "model.json"
        booster.save_model(path)
        fitted[name] = (booster, read_xgboost(path.read_bytes())[0])
    return fitted


def explained_output(name: str, model, form, rows: np.ndarray) -> np.ndarray:
    """What the attributions add up to, from the library itself: a tree's or forest's ``predict_proba`` (or
    ``predict``), a boosted model's raw margin (for XGBoost the float64 sum of its leaves: XGBoost sums them
    in float32, a rounding the attributions do not share)."""
    if name.startswith("xgboost"):
        walker = BoostedWalker(form.nodes, form.roots, form.columns, form.value, form.bitsets, form.baseline,
                               n_features=form.n_features, float32_sums=False)
        return walker.output(np.ascontiguousarray(rows.astype(np.float32), dtype=np.float64))
    if name.startswith(("tree", "forest")):
        return model.predict_proba(rows) if hasattr(model, "classes_") else model.predict(rows)[:, None]
    return model._raw_predict(rows.astype(np.float32) if name.startswith("gradient") else rows)


@pytest.mark.parametrize("name", [*SKLEARN, *XGBOOST])
def test_base_value_and_values_add_up_to_the_models_answer(models, name):
    model, form = models[name]
    base, values = form.explain(ROWS)
    assert values.shape == (len(ROWS), 7, len(base))
    np.testing.assert_allclose(base + values.sum(axis=1), explained_output(name, model, form, ROWS), rtol=0,
                               atol=1e-9)


@pytest.mark.parametrize("name", [*SKLEARN, *XGBOOST])
def test_a_column_no_tree_splits_on_gets_exactly_zero(models, name):
    _, values = models[name][1].explain(ROWS)
    assert (values[:, 6, :] == 0).all()
    assert (np.abs(values[:, :4, :]).sum(axis=0) > 0).all()


@pytest.mark.parametrize("name", [name for name in SKLEARN if name != "gradient-multiclass"])  # shap: binary only
def test_values_equal_shaps_tree_explainer(models, name):
    model, form = models[name]
    base, values = form.explain(ROWS[:-1])  # shap's own NaN handling is not the oracle here
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        explainer = shap.TreeExplainer(model, feature_perturbation="tree_path_dependent")
        expected = np.asarray(explainer.shap_values(ROWS[:-1], check_additivity=False))
    expected = expected.reshape(values.shape)
    np.testing.assert_allclose(values, expected, rtol=0, atol=1e-8)
    np.testing.assert_allclose(base, np.atleast_1d(explainer.expected_value).reshape(-1), rtol=0, atol=1e-8)


@pytest.mark.parametrize("name", list(XGBOOST))
def test_xgboost_values_equal_shaps_own_tree_shap_on_the_same_trees(models, name):
    """shap hands a Booster to XGBoost's float32 TreeSHAP; its own C TreeSHAP (``model_type="internal"``)
    walks the same trees in float64, with the leaves as XGBoost holds them (float32)."""
    booster, form = models[name]
    _, values = form.explain(ROWS[:-1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        explainer = shap.TreeExplainer(booster, feature_perturbation="tree_path_dependent")
        from_xgboost = np.asarray(explainer.shap_values(ROWS[:-1])).reshape(values.shape)
        explainer.model.model_type = "internal"
        in_float64 = np.asarray(explainer.shap_values(ROWS[:-1], check_additivity=False)).reshape(values.shape)
    np.testing.assert_allclose(values, in_float64, rtol=0, atol=1e-8)
    np.testing.assert_allclose(values, from_xgboost, rtol=0, atol=1e-5)  # XGBoost's float32 arithmetic


def _goes_left(node, row) -> bool:
    """Where the walker sends ``row`` at ``node`` (tree_walk.c), in Python."""
    feature = int(node["feature"])
    column = feature & ~int(NAN_LEFT | CATEGORICAL)
    x = row[column]
    if np.isnan(x):
        return bool(feature & int(NAN_LEFT))
    return bool(x <= node["threshold"])


def _value_function(form, cover, value, root: int, row, known: frozenset) -> np.ndarray:
    """v(S) = E[f(x) | x_S] under the tree's covers (Lundberg et al. 2018, Algorithm 1)."""
    def expected(at: int) -> np.ndarray:
        node = form.nodes[at]
        right, left = (int(c) for c in node["child"])
        if left == at:
            return value[at]
        column = int(node["feature"]) & ~int(NAN_LEFT | CATEGORICAL)
        if column in known:
            return expected(left if _goes_left(node, row) else right)
        return (cover[left] * expected(left) + cover[right] * expected(right)) / cover[at]
    return expected(root)


def brute_force_shapley(form, row: np.ndarray, *, averaged: bool, columns=None) -> np.ndarray:
    """Every column's Shapley value of the value function, over all 2^M subsets."""
    m = form.n_features
    value = form.value.reshape(len(form.nodes), -1)
    width = value.shape[1]
    n_outputs = width if columns is None else len(form.baseline)
    phi = np.zeros((m, n_outputs))
    for tree, root in enumerate(form.roots):
        first = 0 if columns is None else int(columns[tree])
        v = {}
        for size in range(m + 1):
            for subset in itertools.combinations(range(m), size):
                v[frozenset(subset)] = _value_function(form, form.cover, value, int(root), row, frozenset(subset))
        for i in range(m):
            for subset, worth in v.items():
                if i in subset:
                    continue
                weight = math.factorial(len(subset)) * math.factorial(m - len(subset) - 1) / math.factorial(m)
                phi[i, first:first + width] += weight * (v[subset | {i}] - worth)
    return phi / len(form.roots) if averaged else phi


@pytest.mark.parametrize("name", ["tree-classifier", "forest-regressor", "hist-multiclass", "gradient-multiclass",
                                  "xgboost-binary"])
def test_values_equal_brute_force_shapley_values_of_the_same_value_function(models, name):
    _, form = models[name]
    small = ROWS[[7, -1]]
    _, values = form.explain(small)
    wide = form.nodes.dtype == WIDE_NODE
    for row, got in zip(small, values):
        walked = row.astype(np.float32).astype(np.float64) if not wide or form.float32_rows else row
        expected = brute_force_shapley(form, walked, averaged=getattr(form, "averaged", False),
                                       columns=form.columns if wide else None)
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


def test_a_forty_levels_deep_tree_adds_up_and_equals_shap():
    x = RNG.normal(size=(5000, 3))
    model = DecisionTreeRegressor(max_depth=40, random_state=0).fit(x, RNG.normal(size=len(x)))  # noise: deep
    assert model.get_depth() == 40
    form = compile_trees(model)
    x = x[:200]
    base, values = form.explain(x)
    np.testing.assert_allclose(base + values.sum(axis=1), model.predict(x)[:, None], rtol=0, atol=1e-9)
    expected = shap.TreeExplainer(model, feature_perturbation="tree_path_dependent").shap_values(x)
    np.testing.assert_allclose(values[:, :, 0], expected, rtol=0, atol=1e-8)


def _deep_tree(n_features: int, seed: int = 0):
    """A regression tree of up to 40 levels (at least 33) on noise over ``n_features`` columns (a path splits
    many of them, most again and again), its compiled form, and 60 rows of its training data."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(5000, n_features))
    model = DecisionTreeRegressor(max_depth=40, random_state=seed).fit(x, rng.normal(size=len(x)))
    assert model.get_depth() >= 33
    return model, compile_trees(model), x[:60]


def test_a_deep_tree_equals_the_brute_force_shapley_values():
    """Every column is split again and again down the levels: each repeat replaces the column's factor."""
    _, form, x = _deep_tree(4)
    _, values = form.explain(x[:3])
    for row, got in zip(x[:3], values):
        expected = brute_force_shapley(form, row.astype(np.float32).astype(np.float64), averaged=False)
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


# Rules of 6, 8, 12 and 16 points (each compiled walk but 4 points, which 8 columns or fewer take) and of 20 (any number)
@pytest.mark.parametrize("n_features", [12, 16, 24, 32, 48])
def test_deep_trees_over_many_columns_equal_shap_and_add_up(n_features):
    model, form, x = _deep_tree(n_features, seed=n_features)
    base, values = form.explain(x)
    np.testing.assert_allclose(base + values.sum(axis=1), model.predict(x)[:, None], rtol=0, atol=1e-9)
    expected = shap.TreeExplainer(model, feature_perturbation="tree_path_dependent").shap_values(x)
    np.testing.assert_allclose(values[:, :, 0], expected, rtol=0, atol=1e-8)


@pytest.mark.parametrize("outputs", [1, 2, 3])  # one, two and any other number of values a leaf
def test_a_classifier_of_any_number_of_outputs_equals_shap_and_the_brute_force(outputs):
    labels = np.digitize(Y, np.quantile(Y, np.linspace(0, 1, outputs + 1)[1:-1])) if outputs > 1 else Y
    kind = RandomForestClassifier if outputs > 1 else RandomForestRegressor
    model = kind(8, max_depth=9, random_state=0).fit(X, labels)
    form = compile_trees(model)
    base, values = form.explain(ROWS[:-1])
    assert values.shape[2] == outputs
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = shap.TreeExplainer(model, feature_perturbation="tree_path_dependent").shap_values(ROWS[:-1])
    np.testing.assert_allclose(values, np.asarray(expected).reshape(values.shape), rtol=0, atol=1e-8)
    row = ROWS[3].astype(np.float32).astype(np.float64)
    np.testing.assert_allclose(values[3], brute_force_shapley(form, row, averaged=True), rtol=0, atol=1e-12)


def test_children_of_no_cover_are_explained_as_the_value_function_says():
    """A leaf of zero cover adds nothing where the row goes elsewhere (its subtree is not walked) and is
    weighed by the row alone where the row goes there: both are its brute-force Shapley values."""
    model = DecisionTreeRegressor(max_depth=6, random_state=0).fit(X, Y)
    form = copy.deepcopy(compile_trees(model))
    leaves = np.flatnonzero(form.nodes["child"][:, 0] == np.arange(len(form.nodes)))
    walked = model.apply(ROWS[:8].astype(np.float32))
    emptied = np.concatenate([leaves[::3], walked[:2]])  # some leaves rows reach, most they do not
    form.cover[emptied] = 0.0
    base, values = form.explain(ROWS[:8])
    for row, got in zip(ROWS[:8], values):
        expected = brute_force_shapley(form, row.astype(np.float32).astype(np.float64), averaged=False)
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    assert (values[:, 6, :] == 0).all()


def test_a_model_without_covers_or_with_bad_ones_is_not_explainable_and_says_why(models):
    form = models["forest-regressor"][1]
    arguments = {"nodes": form.nodes, "roots": form.roots, "value": form.value, "n_features": 7, "n_outputs": 1}
    with pytest.raises(NotExplainable, match="holds no node covers"):
        TreeExplainer(**arguments, cover=None)
    for bad in (np.nan, -1.0, np.inf):
        cover = form.cover.copy()
        cover[3] = bad
        with pytest.raises(NotExplainable, match="not one finite, non-negative number per node"):
            TreeExplainer(**arguments, cover=cover)
    # Found by the served forms' fuzzer (tests/fuzz): a stored form whose covers were its node records raised TypeError.
    with pytest.raises(NotExplainable, match="not one finite, non-negative number per node"):
        TreeExplainer(**arguments, cover=form.nodes)
    with pytest.raises(NotExplainable, match="a split node has no cover"):
        TreeExplainer(**arguments, cover=np.zeros(len(form.nodes)))
    with pytest.raises(NotExplainable, match="a tree is 5000 levels deep; at most 4096 are explained"):
        TreeExplainer(nodes=_chain(5000), roots=np.zeros(1, np.int32), value=np.zeros(10001), n_features=1,
                      n_outputs=1, cover=np.ones(10001))


def _chain(depth: int) -> np.ndarray:
    """A tree that is a chain ``depth`` splits long (node 2k splits into leaf 2k+1 and node 2k+2)."""
    from registry.inference.tree_walk import NODE

    nodes = np.zeros(2 * depth + 1, dtype=NODE)
    ids = np.arange(len(nodes))
    nodes["child"][:, 0] = nodes["child"][:, 1] = ids
    inner = ids[:-1:2]
    nodes["child"][inner, 0], nodes["child"][inner, 1] = inner + 2, inner + 1
    nodes["threshold"] = np.inf
    return nodes


def damage(what: str, nodes: np.ndarray, roots: np.ndarray, columns) -> None:
    """Change records in place, as a write into the mapped file would, after the explainer was made."""
    inner = int(np.flatnonzero(nodes["child"][:, 0] != np.arange(len(nodes)))[0])
    if what == "child past the nodes":
        nodes["child"][inner] = len(nodes)
    elif what == "negative child":
        nodes["child"][inner] = -(2**31)
    elif what == "child back to its node":
        nodes["child"][inner, 0] = inner
    elif what == "child before its node":
        nodes["child"][inner + 1] = inner
    elif what == "column past the model's":
        nodes["feature"][inner] = 7 | (nodes["feature"][inner] & NAN_LEFT)
    elif what == "root past the nodes":
        roots[-1] = 1 << 30
    elif what == "deeper than measured":  # every leaf made a split into the leaf after it
        leaves = np.flatnonzero(nodes["child"][:, 0] == np.arange(len(nodes)))[:-1]
        nodes["child"][leaves, 0] = nodes["child"][leaves, 1] = leaves + 1
    elif what == "output column past the model's":
        columns[-1] = 2**31 - 1
    else:
        raise AssertionError(what)


DAMAGES = ["child past the nodes", "negative child", "child back to its node", "child before its node",
           "column past the model's", "root past the nodes", "deeper than measured"]


@pytest.fixture
def records_walked(monkeypatch):
    """Trees and forests explained by the walk of their records, node by node, as boosted models are: no path copy."""
    monkeypatch.setattr(tree_shap, "PATHS_MAX_BYTES", 0)


@pytest.mark.parametrize("kind, what", [*((kind, what) for kind in ("forest-classifier", "hist-multiclass")
                                          for what in DAMAGES), ("hist-multiclass", "output column past the model's")])
def test_records_damaged_after_the_explainer_was_made_raise_nodes_damaged_never_crash(models, records_walked, what,
                                                                                        kind):
    form = copy.deepcopy(models[kind][1])  # its own arrays, rebuilt from its state
    form.explain(ROWS[:2])
    assert form._explainer._paths is None
    damage(what, form.nodes, form.roots, getattr(form, "columns", None))
    with pytest.raises(NodesDamaged):
        form.explain(ROWS)


@pytest.mark.parametrize("what", DAMAGES)
def test_a_forests_path_copy_explains_what_it_was_made_from_whatever_the_records_become(models, what):
    form = copy.deepcopy(models["forest-classifier"][1])
    base, values = form.explain(ROWS)
    assert isinstance(form._explainer._paths, PrivateCopy) is tree_shap.PATHS_SUPPORTED
    damage(what, form.nodes, form.roots, None)
    if not tree_shap.PATHS_SUPPORTED:  # this CPU walks the records, which say they were damaged
        with pytest.raises(NodesDamaged):
            form.explain(ROWS)
        return
    again_base, again = form.explain(ROWS)  # read from the copy alone: the same numbers, and no crash
    assert np.array_equal(again_base, base) and np.array_equal(again, values)


@pytest.mark.parametrize("what", ["child past the nodes", "negative child", "child back to its node",
                                  "child before its node", "column past the model's"])
def test_records_damaged_before_the_path_copy_is_made_raise_nodes_damaged(models, what):
    form = copy.deepcopy(models["forest-classifier"][1])
    damage(what, form.nodes, form.roots, None)
    with pytest.raises(NodesDamaged):
        form.explain(ROWS)


@pytest.mark.parametrize("name", [name for name in SKLEARN if name.startswith(("tree", "forest"))])
def test_the_path_copy_and_the_walk_of_the_records_give_the_same_values(models, name, monkeypatch):
    form = models[name][1]
    explainer = TreeExplainer(nodes=form.nodes, roots=form.roots, value=form.value, cover=form.cover,
                              n_features=form.n_features, n_outputs=form.value.shape[1], averaged=len(form.roots) > 1)
    walked = TreeExplainer(nodes=form.nodes, roots=form.roots, value=form.value, cover=form.cover,
                           n_features=form.n_features, n_outputs=form.value.shape[1], averaged=len(form.roots) > 1,
                           paths_max_bytes=0)
    assert isinstance(explainer._paths, PrivateCopy) is tree_shap.PATHS_SUPPORTED and walked._paths is None
    rows = np.ascontiguousarray(ROWS, dtype=np.float32)
    base, values = explainer.explain(rows)
    np.testing.assert_allclose(values, walked.explain(rows)[1], rtol=0, atol=1e-12)
    assert np.array_equal(base, walked.base_value)


def test_paths_deeper_than_64_levels_and_copies_too_large_are_explained_from_the_records():
    for depth, budget, copied in [(64, None, True), (65, None, False), (10, 100, False)]:
        nodes = _chain(depth)
        nodes["threshold"][::2] = 0.5
        explainer = TreeExplainer(nodes=nodes, roots=np.zeros(1, np.int32), value=np.arange(2.0 * depth + 1),
                                  n_features=1, n_outputs=1, cover=np.linspace(2.0 * depth + 1, 1, 2 * depth + 1),
                                  paths_max_bytes=budget)
        assert (explainer._paths is not None) is (copied and tree_shap.PATHS_SUPPORTED), (depth, budget)
        rows = np.array([[0.25], [0.75], [np.nan]], dtype=np.float32)
        base, values = explainer.explain(rows)
        walked = TreeExplainer(nodes=nodes, roots=np.zeros(1, np.int32), value=np.arange(2.0 * depth + 1),
                               n_features=1, n_outputs=1, cover=np.linspace(2.0 * depth + 1, 1, 2 * depth + 1),
                               paths_max_bytes=0)
        np.testing.assert_allclose(values, walked.explain(rows)[1], rtol=1e-14, atol=1e-12)  # values near 1,000


def test_damaged_covers_give_numbers_not_a_crash(models, records_walked):
    form = copy.deepcopy(models["forest-regressor"][1])
    form.explain(ROWS[:1])
    form.cover[:] = np.where(np.arange(len(form.cover)) % 2, 0.0, np.nan)
    _, values = form.explain(ROWS)
    assert values.shape == (len(ROWS), 7, 1)


def test_rows_of_the_wrong_type_or_width_are_refused_before_any_walk(models):
    form = models["forest-regressor"][1]
    form.explain(ROWS[:1])
    explainer = form._explainer
    for rows in (ROWS.astype(np.float64), ROWS[:, :3].astype(np.float32), np.asfortranarray(ROWS, np.float32)):
        with pytest.raises(ValueError, match="rows are not a contiguous float32 array of 7 columns"):
            explainer.explain(rows)


@pytest.mark.parametrize("wide", [False, True])
def test_splits_sharing_a_child_are_not_explainable_rather_than_damaged(wide):
    """Found by the walker's fuzzer (tests/fuzz): records whose splits share a child pass the walker's checks (each
    child is after its node), but an explanation visits each node once, and said the records had changed since
    they were checked (NodesDamaged) for records that never changed."""
    nodes = np.zeros(3, dtype=WIDE_NODE if wide else NODE)
    nodes["child"] = [[1, 1], [2, 2], [2, 2]]  # node 0's two children are node 1, node 1's are node 2
    nodes["threshold"] = [np.inf, 1e-36, 0.0]
    with pytest.raises(NotExplainable, match="a node is the child of more than one split"):
        TreeExplainer(nodes=nodes, roots=np.array([0, 0, 2], np.int32), value=np.zeros(3), cover=np.ones(3),
                      n_features=4, n_outputs=1)
