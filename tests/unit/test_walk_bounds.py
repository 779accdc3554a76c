"""Node records changed under a running walker (a mapped file written in place) give a clean error, never a
crash or a walk without end: the compiled walk checks every root, column and child it reads."""
import numpy as np
import pytest
from sklearn.ensemble import RandomForestClassifier

from registry.artifacts.signature import Signature
from registry.errors import ArtifactCorrupted, InvalidInput
from registry.serving.cache import ServableModel
from registry.inference.fast_trees import CompiledTrees, compile_trees
from registry.serving.running import run_model
from registry.inference.tree_walk import NAN_LEFT, InvalidNodes, NodesDamaged

ROWS = np.random.default_rng(4).normal(size=(300, 4))


@pytest.fixture(scope="module")
def model():
    return RandomForestClassifier(n_estimators=3, random_state=0).fit(ROWS, ROWS[:, 0] > 0)


def inner_node(nodes: np.ndarray) -> int:
    """The first node that is not a leaf (the first tree's root)."""
    return int(np.flatnonzero(nodes["child"][:, 0] != np.arange(len(nodes)))[0])


def damage(name: str, nodes: np.ndarray, roots: np.ndarray) -> None:
    """Change one record in place as a byte written into the mapped file would."""
    inner = inner_node(nodes)
    if name == "child past the nodes":
        nodes["child"][inner] = len(nodes)
    elif name == "child far past the nodes":
        nodes["child"][inner] = 2**31 - 1
    elif name == "negative child":
        nodes["child"][inner] = -(2**31)
    elif name == "child back to an earlier node":
        nodes["child"][inner + 1] = inner
    elif name == "self-loop on an internal node":  # on the side the first row takes, the other one kept
        node = nodes[inner]
        taken = int(np.float32(ROWS[0, node["feature"] & ~NAN_LEFT]) <= node["threshold"])
        nodes["child"][inner, taken] = inner
    elif name == "column past the model's":
        nodes["feature"][inner] = 4
    elif name == "column far past the model's":
        nodes["feature"][inner] = ~NAN_LEFT
    elif name == "root past the nodes":
        roots[-1] = 1 << 30
    else:
        raise AssertionError(name)


DAMAGES = ["child past the nodes", "child far past the nodes", "negative child", "child back to an earlier node",
           "self-loop on an internal node", "column past the model's", "column far past the model's",
           "root past the nodes"]


@pytest.mark.parametrize("what", DAMAGES)
@pytest.mark.parametrize("rows", [1, 300], ids=["one-row", "batch"])
def test_records_damaged_after_the_walker_was_made_raise_nodes_damaged_and_nothing_else(model, what, rows):
    trees = compile_trees(model)
    saved = trees.nodes.copy(), trees.roots.copy()
    damage(what, trees.nodes, trees.roots)  # the walker's own arrays, as a mapped file's pages are
    with pytest.raises(NodesDamaged, match="the node records changed since they were checked"):
        trees.predict_proba(ROWS[:rows])
    trees.nodes[:], trees.roots[:] = saved
    assert np.array_equal(trees.predict_proba(ROWS), model.predict_proba(ROWS))


@pytest.mark.parametrize("what", DAMAGES)
def test_records_damaged_before_the_walker_is_made_are_refused_when_it_is_made(model, what):
    state = compile_trees(model).__getstate__()
    state = {**state, "nodes": state["nodes"].copy(), "roots": state["roots"].copy()}
    damage(what, state["nodes"], state["roots"])
    with pytest.raises(InvalidNodes):
        CompiledTrees(**state)


def test_a_prediction_over_damaged_records_is_a_server_fault_not_the_callers(model):
    trees = compile_trees(model)
    servable = ServableModel("forest", 2, "0" * 64, "classification",
                             Signature.from_dict({"features": [{"name": f"x{i}", "dtype": "float64"} for i in range(4)],
                                                 "classes": [False, True]}), trees)
    damage("child far past the nodes", trees.nodes, trees.roots)
    with pytest.raises(ArtifactCorrupted) as raised:
        run_model(servable, ROWS[:1], return_proba=False)
    assert not isinstance(raised.value, InvalidInput)
    assert "version 2 of 'forest'" in raised.value.detail
