"""What a loaded model holds in memory: its arrays' bytes plus the objects around them, measured.

The artifact's size says little: a compressed file unpacks to many times its size, and a compiled
forest adds flat arrays beside scikit-learn's own. So the graph of the estimator and of what predict
calls is walked once, at load: every NumPy array counts its buffer once (views count their owner),
scikit-learn's trees count the node and value buffers they allocated, everything else its own size.
"""
import sys
from collections.abc import Iterable
from types import BuiltinFunctionType, FunctionType, MethodType, ModuleType

import numpy as np

_NOT_HELD = (type, ModuleType, FunctionType, BuiltinFunctionType, MethodType, np.ufunc)  # shared by every model
_ATOMS = (str, bytes, int, float, complex, bool, type(None), np.generic, np.dtype)


def held_bytes(*roots: object) -> int:
    """The bytes ``roots`` and everything they reach hold, each object counted once."""
    seen: set[int] = set()
    stack = list(roots)
    total = 0
    while stack:
        item = stack.pop()
        if id(item) in seen or isinstance(item, _NOT_HELD):
            continue
        seen.add(id(item))
        total += _own_bytes(item)
        stack.extend(_reached(item))
    return total


def _own_bytes(item: object) -> int:
    if isinstance(item, np.ndarray):
        return sys.getsizeof(item)  # with its buffer when it owns one, its header alone when it is a view
    trees = _trees_module()
    if trees is not None and isinstance(item, trees.Tree):
        value_bytes = item.capacity * item.n_outputs * item.max_n_classes * np.dtype(np.float64).itemsize
        return item.capacity * trees.NODE_DTYPE.itemsize + value_bytes + sys.getsizeof(item)
    return sys.getsizeof(item, 0)


def _reached(item: object) -> Iterable:
    trees = _trees_module()
    if isinstance(item, _ATOMS) or (trees is not None and isinstance(item, trees.Tree)):
        return ()
    if isinstance(item, np.ndarray):
        if item.base is not None:
            return (item.base,)
        return item.ravel() if item.dtype == object else ()
    if isinstance(item, dict):
        return [*item.keys(), *item.values()]
    if isinstance(item, (list, tuple, set, frozenset)):
        return item
    reached = list(vars(item).values()) if hasattr(item, "__dict__") else []
    for name in getattr(type(item), "__slots__", ()):
        if hasattr(item, name):
            reached.append(getattr(item, name))
    return reached


def _trees_module():
    """scikit-learn's tree module, if this process loaded it: no Tree exists before then (a worker
    serving only from served forms never loads scikit-learn)."""
    return sys.modules.get("sklearn.tree._tree")
