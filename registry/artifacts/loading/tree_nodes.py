"""The check of a scikit-learn Tree's nodes, shared by the forest's checks and the boosted models'."""
from __future__ import annotations

import numpy as np
from sklearn.tree._tree import TREE_LEAF, Tree

from registry.errors import UnsafeArtifact

_BROKEN_TREE = "artifact holds a decision tree whose nodes point outside the tree or its features"


def check_tree(tree, n_features: int) -> None:
    """Refuse a scikit-learn Tree whose walk could leave its nodes or read past ``n_features`` columns."""
    # Every node predict can reach is checked once the root is counted and children come later.
    if not isinstance(tree, Tree) or not 0 < tree.node_count <= tree.capacity:
        raise UnsafeArtifact(_BROKEN_TREE)
    nodes = np.arange(tree.node_count)
    split = tree.children_left != TREE_LEAF
    parents = nodes[split]
    children_after_parent = all(
        np.all((children[split] > parents) & (children[split] < tree.node_count))
        for children in (tree.children_left, tree.children_right)
    )
    features = tree.feature[split]
    if not (children_after_parent and np.all((features >= 0) & (features < n_features))):
        raise UnsafeArtifact(_BROKEN_TREE)
