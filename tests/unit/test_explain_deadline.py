"""The compiled explanations end on time and say what they cost before they start (issue 67, items 8 and 9): given a
deadline, the walk of the records and the path copy stop soon after it passes (ExplanationTimedOut), whatever the
trees; without one they answer as before; a row's cost is known from the trees alone; and the serving's bounds
refuse, before any work, a version whose one row costs too much and a request whose rows do."""
import time

import numpy as np
import pytest
from sklearn.ensemble import RandomForestRegressor

from bench.hostile_explanations import lightgbm_chain, rows
from registry.artifacts.loading import model_files
from registry.errors import BatchTooLarge, NotExplainable
from registry.inference.fast_trees import compile_trees
from registry.inference.predictors import LinearPredictor, TreePredictor
from registry.inference import tree_shap
from registry.inference.tree_shap import PATHS_SUPPORTED, ExplanationTimedOut, TreeExplainer, points_for, walks_for
from registry.serving.explain_bounds import ExplainBounds, admit, verdict

DEPTH = 2000  # a chain of 4,001 nodes over 2,000 columns: 1,000 points a node, tens of ms a row


@pytest.fixture(scope="module")
def chain():
    form, _ = model_files.read_model_file("lightgbm", lightgbm_chain(DEPTH), None)
    return form


@pytest.fixture(scope="module")
def forest():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2000, 6))
    model = RandomForestRegressor(100, max_depth=12, random_state=0).fit(x, x[:, 0] + rng.normal(size=len(x)))
    return compile_trees(model), x


def test_a_chains_row_cost_is_its_nodes_times_the_points_its_path_needs(chain):
    assert chain.explainer().row_cost == (2 * DEPTH + 1) * (DEPTH // 2) * 1
    assert points_for(DEPTH) == DEPTH // 2 and points_for(10) == 6 and points_for(40) == 20


def test_the_cost_decides_the_lane_not_rows_times_trees(chain, monkeypatch):
    asked = []
    lanes = tree_shap.functions_for
    monkeypatch.setattr(tree_shap, "functions_for", lambda walks, **kw: asked.append(walks) or lanes(walks, **kw))
    chain.explain(np.asarray(rows(DEPTH, 2)))
    # 2 rows × 4,001,000 node-points, counted 32 a walk: past LOW_PRIORITY_FROM_WALKS's default (200,000) where rows
    # × trees said 2
    assert asked == [walks_for(2 * 4_001_000)] == [250_063]


def test_the_walk_of_the_records_stops_soon_after_its_deadline(chain):
    X = np.asarray(rows(DEPTH, 400))  # seconds of work
    started = time.monotonic()
    with pytest.raises(ExplanationTimedOut):
        chain.explain(X, deadline=started + 0.3)
    assert time.monotonic() - started < 0.6


def test_a_deadline_not_reached_changes_nothing(chain):
    X = np.asarray(rows(DEPTH, 3))
    base, values = chain.explain(X)
    timed_base, timed_values = chain.explain(X, deadline=time.monotonic() + 60)
    assert np.array_equal(base, timed_base) and np.array_equal(values, timed_values)
    assert np.allclose(base + values.sum(axis=(1, 2)), chain.predict(X))


@pytest.mark.parametrize("paths", [True, False], ids=["path-copy", "walk-of-the-records"])
def test_a_forest_stops_at_its_deadline_on_either_walk(forest, paths):
    compiled, x = forest
    if paths and not PATHS_SUPPORTED:
        pytest.skip("this CPU has no AVX2: no path copy is made, the walk of the records is tested")
    explainer = TreeExplainer(nodes=compiled.nodes, roots=compiled.roots, value=compiled.value, cover=compiled.cover,
                              n_features=compiled.n_features, n_outputs=1, averaged=True,
                              paths_max_bytes=None if paths else 0)
    assert (explainer._paths is not None) == paths
    X = np.ascontiguousarray(np.tile(x, (5, 1)), dtype=np.float32)  # 10,000 rows: seconds either way
    started = time.monotonic()
    with pytest.raises(ExplanationTimedOut):
        explainer.explain(X, deadline=started + 0.2)
    assert time.monotonic() - started < 0.5
    base, values = explainer.explain(X[:5], deadline=time.monotonic() + 60)
    assert np.allclose(base + values.sum(axis=(1, 2)), compiled.predict(X[:5]))


def test_a_version_whose_row_costs_more_than_the_bound_is_not_explainable_and_says_why(chain):
    bounds = ExplainBounds(max_row_cost=1_000_000)
    explainable, reason, cost = verdict(TreePredictor([], chain), bounds)
    assert (explainable, cost) == (False, 4_001_000)
    assert "4,001,000 node-points" in reason and "EXPLAIN_MAX_ROW_COST=1,000,000" in reason
    with pytest.raises(NotExplainable, match="is not explainable: one row's exact explanation would cost 4,001,000"):
        admit(TreePredictor([], chain), 1, bounds, where="version 1 of 'chain'")
    assert verdict(TreePredictor([], chain), ExplainBounds()) == (True, None, 4_001_000)


def test_a_request_costing_more_than_the_bound_is_refused_naming_the_rows_that_fit(chain):
    bounds = ExplainBounds(max_cost=40_010_000)
    admit(TreePredictor([], chain), 10, bounds, where="v")
    with pytest.raises(BatchTooLarge, match="would cost 44,011,000 node-points .* explain at most 10 rows"):
        admit(TreePredictor([], chain), 11, bounds, where="v")
    with pytest.raises(BatchTooLarge, match="MAX_EXPLAIN_ROWS"):
        admit(TreePredictor([], chain), 501, ExplainBounds(), where="v")


def test_a_linear_model_costs_a_product_a_row_and_a_library_served_one_is_not_explainable():
    linear = LinearPredictor([], np.ones(3), 0.0, None, None)
    assert verdict(linear, ExplainBounds(max_row_cost=1)) == (True, None, None)
    admit(linear, 500, ExplainBounds(max_cost=1), where="v")
    explainable, reason, _ = verdict(object(), ExplainBounds())
    assert not explainable and "served by its library" in reason
