"""A batch of a tree or forest walks a private copy of its trees (tree_walk.c's tree_walk_forest): its answers are
the records' walk bit for bit and scikit-learn's, it is made from records checked as they are read, a model it would
not fit (or whose trees share nodes) is walked from its records, and once made nothing written to the records
reaches it.

The oracles are scikit-learn itself and the same walker answering one row at a time, which walks the records
(tree_walk_output); random trees and forests of every task from tests/unit/test_fast_trees.py, against rows holding
their thresholds, float32 neighbours, extremes, signed zeros and NaN.
"""
import numpy as np
import pytest
from sklearn.ensemble import RandomForestRegressor

from registry.inference import tree_walk
from registry.inference.fast_trees import compile_trees
from registry.inference.tree_walk import NodesDamaged, Walker
from tests.unit.test_fast_trees import assert_identical, awkward_rows, random_model, scikit_learn


def with_nan(rng, rows: np.ndarray) -> np.ndarray:
    """``rows`` with a tenth of their values NaN."""
    rows = rows.copy()
    rows[rng.random(rows.shape) < 0.1] = np.nan
    return rows


def one_row_at_a_time(walker: Walker, rows: np.ndarray) -> np.ndarray:
    """The walker's answer walked from its records: a row at a time, below FOREST_COPY_FROM_ROWS."""
    return np.concatenate([walker.output(rows[i:i + 1]) for i in range(len(rows))])


@pytest.mark.parametrize("seed", range(40))
def test_a_batch_over_the_copy_answers_what_the_records_and_scikit_learn_answer_bit_for_bit(seed):
    model, X = random_model(seed)
    rng = np.random.default_rng(20_000 + seed)
    rows = with_nan(rng, awkward_rows(rng, model, X))
    fast = compile_trees(model)
    method = model.predict_proba if hasattr(model, "classes_") else model.predict
    for size in (1000, 257, 256, 32):  # blocks full and not, and the fewest rows that take the copy
        batch = rows[:size]
        with np.errstate(over="ignore"):
            ours = fast.predict_proba(batch) if hasattr(model, "classes_") else fast.predict(batch)
            walked = one_row_at_a_time(fast._walker, fast._rows(batch))
            again = fast._walker.output(fast._rows(batch))
        assert isinstance(fast._walker._copy, tree_walk.PrivateCopy)
        assert_identical(ours, scikit_learn(method, batch))
        assert_identical(again, walked)


def test_fewer_rows_than_the_copy_takes_walk_the_records_and_make_no_copy():
    model, X = random_model(0)
    fast = compile_trees(model)
    rows = awkward_rows(np.random.default_rng(1), model, X)[:tree_walk.FOREST_COPY_FROM_ROWS - 1]
    with np.errstate(over="ignore"):
        assert_identical(fast.predict(rows), scikit_learn(model.predict, rows))
    assert fast._walker._copy is None


def test_a_forest_past_the_bound_is_walked_from_its_records(monkeypatch):
    model, X = random_model(2)
    rows = with_nan(np.random.default_rng(2), awkward_rows(np.random.default_rng(3), model, X))
    monkeypatch.setattr(tree_walk, "FOREST_COPY_MAX_BYTES", 64)
    fast = compile_trees(model)
    with np.errstate(over="ignore"):
        assert_identical(fast.predict(rows), scikit_learn(model.predict, rows))
    assert fast._walker._copy is False


def shared_nodes(depth: int) -> dict:
    """A chain of ``depth`` splits each sending both ways to the next (a leaf at the end), and 50 trees all rooted at
    its first split: records the walk and its checks allow, whose layout as separate trees would take 2^depth
    nodes a tree."""
    records = [(float(i), 0, (i + 1, i + 1)) for i in range(depth)] + [(np.inf, 0, (depth, depth))]
    nodes = np.array(records, dtype=tree_walk.NODE)
    return dict(nodes=nodes, roots=np.zeros(50, dtype=np.int32), value=np.arange(depth + 1.0)[:, None],
                n_features=1, averaged=True)


def test_trees_or_splits_sharing_nodes_are_walked_from_the_records_whatever_their_layout_would_take():
    walker = Walker(**shared_nodes(40))
    rows = np.linspace(-5, 50, 100, dtype=np.float32)[:, None]
    assert_identical(walker.output(rows), np.full((100, 1), 40.0))
    assert walker._copy is False


def test_records_damaged_before_the_copy_is_made_raise_nodes_damaged():
    model = RandomForestRegressor(n_estimators=3, random_state=0).fit(np.eye(4), np.arange(4.0))
    fast = compile_trees(model)
    inner = int(np.flatnonzero(fast.nodes["child"][:, 0] != np.arange(len(fast.nodes)))[0])
    fast.nodes["child"][inner, 1] = inner - 1 if inner else len(fast.nodes)  # before its node, or past them
    with pytest.raises(NodesDamaged, match="the node records changed since they were checked"):
        fast.predict(np.zeros((100, 4)))
    assert fast._walker._copy is None  # none made: the next batch reads the records again


def test_records_damaged_after_the_copy_is_made_leave_its_answers_as_they_were():
    model, X = random_model(4)
    rows = awkward_rows(np.random.default_rng(5), model, X)
    fast = compile_trees(model)
    with np.errstate(over="ignore"):
        before = fast.predict(rows)
        fast.nodes["threshold"][:] = 0
        fast.nodes["child"][:] = len(fast.nodes)
        fast.value[:] = -1
        assert_identical(fast.predict(rows), before)  # the copy is the process's own: nothing it reads changed
        with pytest.raises(NodesDamaged):
            fast.predict(rows[:1])  # a single row still walks the records, and finds them changed
