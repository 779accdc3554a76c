"""A batch of a numeric model with float32 rows (XGBoost's, GradientBoosting's) walks a private copy of its trees
(tree_walk.c's tree_walk_compact): its answers are the checked walk's bit for bit, it is made from records checked
as they are read, and a model it would not fit is walked from its records.

The oracle is the same walker answering one row at a time, which walks the records themselves (tree_walk_boosted);
random trees with shallow leaves, NaN and infinite thresholds, float64 thresholds between float32s, signed zeros
and thresholds past float32's range, against rows holding them and their float32 neighbours.
"""
import numpy as np
import pytest

from registry.inference import tree_walk
from registry.inference.tree_walk import NAN_LEFT, WIDE_NODE, BITSET_WORDS, BoostedWalker, NodesDamaged
from tests.unit.test_fast_trees import assert_identical

F32_MAX = float(np.finfo(np.float32).max)
THRESHOLDS = np.array([0.0, -0.0, 1.0, -1.0, 0.1, -2.5, 1e-45, -1e-45, 1e-310, -1e-310, F32_MAX, -F32_MAX, 1e39,
                       -1e39, np.inf, -np.inf, np.nan, 0.30000000000000004, 1.0000000001, -1.0000000001])


def random_model(rng, *, n_trees: int, n_features: int, n_outputs: int, max_depth: int, float32_sums: bool):
    """BoostedWalker's arguments for random trees: each node a leaf with some chance, or a split of a random
    column at a threshold from THRESHOLDS or the normal distribution, its NaN going either way."""
    records, values, roots = [], [], []

    def grow(depth: int) -> int:
        node = len(records)
        records.append(None)
        values.append(0.0)
        if depth == max_depth or rng.random() < 0.25:
            records[node] = (np.inf, 0, 0, (node, node))
            leaf = rng.choice([rng.normal(), -0.0, 0.0, rng.normal() * 1e-30])
            values[node] = float(np.float32(leaf)) if float32_sums else float(leaf)
            return node
        threshold = rng.choice(THRESHOLDS) if rng.random() < 0.5 else rng.normal()
        feature = int(rng.integers(n_features)) | (int(NAN_LEFT) if rng.random() < 0.5 else 0)
        left = grow(depth + 1)
        right = grow(depth + 1)
        records[node] = (threshold, feature, 0, (right, left))
        return node

    for _ in range(n_trees):
        roots.append(grow(0))
    return dict(nodes=np.array(records, dtype=WIDE_NODE), roots=np.array(roots, dtype=np.int32),
                columns=rng.integers(0, n_outputs, n_trees).astype(np.int32), value=np.array(values),
                bitsets=np.zeros((0, BITSET_WORDS), dtype=np.uint32),
                baseline=np.array([float(np.float32(rng.normal())) for _ in range(n_outputs)]),
                n_features=n_features, float32_sums=float32_sums, float32_rows=True)


def awkward_rows(rng, model: dict, n_rows: int) -> np.ndarray:
    """Rows of the model's thresholds, their float32 neighbours, NaN, signed zeros, values that round to
    ±inf in float32 (not for float32 sums, which refuse them) and normal values."""
    with np.errstate(over="ignore"):
        thresholds = model["nodes"]["threshold"].astype(np.float32)
        pool = np.concatenate([thresholds, np.nextafter(thresholds, np.float32(np.inf)),
                               np.nextafter(thresholds, np.float32(-np.inf)), [np.nan, 0.0, -0.0, 1e-46]])
        pool = np.concatenate([pool.astype(float), THRESHOLDS, [1e-300, -1e300]])
        if model["float32_sums"]:
            pool = pool[~np.isinf(pool.astype(np.float32))]
    rows = rng.choice(pool, size=(n_rows, model["n_features"]))
    fresh = rng.random(rows.shape) < 0.2
    rows[fresh] = rng.normal(size=int(fresh.sum()))
    return rows


def one_row_at_a_time(walker: BoostedWalker, rows: np.ndarray) -> np.ndarray:
    """The walker's answer walked from its records: a row at a time, below COMPACT_FROM_ROWS."""
    return np.concatenate([walker.output(rows[i:i + 1]) for i in range(len(rows))])


@pytest.mark.parametrize("float32_sums", [True, False], ids=["xgboost-sums", "float64-sums"])
@pytest.mark.parametrize("seed", range(40))
def test_a_batch_over_the_copy_answers_what_the_records_answer_bit_for_bit(seed, float32_sums):
    rng = np.random.default_rng(seed)
    model = random_model(rng, n_trees=int(rng.integers(1, 30)), n_features=int(rng.integers(1, 6)),
                         n_outputs=int(rng.choice([1, 1, 3])), max_depth=int(rng.integers(0, 9)),
                         float32_sums=float32_sums)
    walker = BoostedWalker(**model)
    rows = awkward_rows(rng, model, int(rng.choice([64, 65, 200, 333])))
    batch = walker.output(rows)
    assert isinstance(walker._compact, tree_walk.PrivateCopy)
    assert_identical(batch, one_row_at_a_time(walker, rows))


def test_a_float32_overflow_in_a_batch_is_refused_as_xgboost_refuses_it():
    rng = np.random.default_rng(0)
    walker = BoostedWalker(**random_model(rng, n_trees=3, n_features=2, n_outputs=1, max_depth=3, float32_sums=True))
    rows = rng.normal(size=(100, 2))
    rows[77, 1] = 1e39
    with pytest.raises(ValueError, match="too large for float32"):
        walker.output(rows)


def test_a_model_past_the_bound_or_too_deep_is_walked_from_its_records(monkeypatch):
    rng = np.random.default_rng(1)
    model = random_model(rng, n_trees=20, n_features=3, n_outputs=2, max_depth=6, float32_sums=True)
    rows = awkward_rows(rng, model, 100)
    monkeypatch.setattr(tree_walk, "COMPACT_MAX_BYTES", 200)
    small = BoostedWalker(**model)
    assert_identical(small.output(rows), one_row_at_a_time(small, rows))
    assert small._compact is False
    monkeypatch.undo()
    # one path 30 splits deep: split 2i sends x <= i / 2 to the leaf 2i + 1, the rest on to 2i + 2
    depth = 30
    records = [(np.inf, 0, 0, (node, node)) for node in range(2 * depth + 1)]
    for i in range(depth):
        records[2 * i] = (i / 2, 0, 0, (2 * i + 2, 2 * i + 1))
    chain = dict(nodes=np.array(records, dtype=WIDE_NODE), roots=np.array([0], dtype=np.int32),
                 columns=np.zeros(1, dtype=np.int32), value=np.arange(2 * depth + 1, dtype=float),
                 bitsets=np.zeros((0, BITSET_WORDS), dtype=np.uint32), baseline=np.zeros(1), n_features=1,
                 float32_sums=True, float32_rows=True)
    deep = BoostedWalker(**chain)
    rows = np.linspace(-1, depth / 2 + 1, 200)[:, None]
    assert_identical(deep.output(rows), one_row_at_a_time(deep, rows))
    assert deep._compact is False


def damage(name: str, model: dict) -> None:
    """Change the arrays in place, as bytes written into a mapped file would."""
    nodes = model["nodes"]
    inner = int(np.flatnonzero(nodes["child"][:, 0] != np.arange(len(nodes)))[0])
    if name == "child past the nodes":
        nodes["child"][inner, 1] = 2**31 - 1
    elif name == "negative child":
        nodes["child"][inner, 0] = -(2**31)
    elif name == "child back to its node":
        nodes["child"][inner, 1] = inner
    elif name == "column past the model's":
        nodes["feature"][inner] = 2**31 - 1
    elif name == "root past the nodes":
        model["roots"][-1] = 1 << 30
    elif name == "output past the model's":
        model["columns"][0] = 2**31 - 1
    else:
        raise AssertionError(name)


DAMAGES = ["child past the nodes", "negative child", "child back to its node", "column past the model's",
           "root past the nodes", "output past the model's"]


def _model_with_a_split(rng) -> dict:
    """A small random XGBoost-like model with at least one split node (so that its records can be damaged)."""
    while True:
        model = random_model(rng, n_trees=5, n_features=3, n_outputs=1, max_depth=5, float32_sums=True)
        if (model["nodes"]["child"][:, 0] != np.arange(len(model["nodes"]))).any():
            return model


@pytest.mark.parametrize("what", DAMAGES)
def test_records_damaged_before_the_copy_is_made_raise_nodes_damaged(what):
    rng = np.random.default_rng(2)
    model = _model_with_a_split(rng)
    walker = BoostedWalker(**model)
    damage(what, model)
    with pytest.raises(NodesDamaged, match="the node records changed since they were checked"):
        walker.output(rng.normal(size=(100, 3)))


@pytest.mark.parametrize("what", DAMAGES)
def test_records_damaged_after_the_copy_is_made_leave_its_answers_as_they_were(what):
    rng = np.random.default_rng(3)
    model = _model_with_a_split(rng)
    walker = BoostedWalker(**model)
    rows = awkward_rows(rng, model, 100)
    before = walker.output(rows)
    damage(what, model)
    assert_identical(walker.output(rows), before)  # the copy is the process's own: nothing it reads changed
