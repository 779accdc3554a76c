"""The one allow-list of what a model file may name, for pickles and for skops files alike.

It is built from the table of supported kinds (``registry.artifacts.supported_estimators``), the internal
classes those models are made of, and the NumPy and builtin types they hold. docs/artifacts.md
lists it for users; refusals point there rather than repeating it.
"""
from __future__ import annotations

import numpy as np
from joblib.numpy_pickle import NumpyArrayWrapper
from sklearn.compose import make_column_selector
from sklearn.preprocessing import FunctionTransformer
from sklearn.tree._tree import Tree

from registry.artifacts.supported_estimators import MODELS, PREPROCESSORS

INTERNAL_CLASSES: tuple[type, ...] = (
    Tree,
    make_column_selector,  # a ColumnTransformer's column choice
    FunctionTransformer,  # how a fitted ColumnTransformer stores "passthrough"
)

ESTIMATOR_CLASSES: tuple[type, ...] = (*MODELS, *PREPROCESSORS, *INTERNAL_CLASSES)

# Scalars an estimator may hold (np.float64(0.5)) or name as a dtype (OneHotEncoder(dtype=...)).
NUMPY_SCALARS: tuple[type, ...] = (
    np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64,
    np.float16, np.float32, np.float64, np.longdouble, np.str_,
)

ALLOWED_GLOBALS: frozenset[tuple[str, str]] = frozenset(
    {(cls.__module__, cls.__qualname__) for cls in (*ESTIMATOR_CLASSES, NumpyArrayWrapper)}
    | {
        ("numpy", "dtype"),
        ("numpy", "ndarray"),
        ("numpy", "float64"),  # the default `dtype` of OneHotEncoder and OrdinalEncoder
        ("numpy", "number"),  # make_column_selector(dtype_include=np.number)
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy._core.numeric", "_frombuffer"),  # arrays in pickle protocol 5
        ("builtins", "slice"),  # ColumnTransformer columns given as a slice
        ("builtins", "object"),  # make_column_selector(dtype_include=object)
    }
)

# skops names each value's type as module.class; these are the same types as above, seen that way.
SKOPS_TYPES: frozenset[tuple[str, str]] = frozenset(
    {(cls.__module__, cls.__qualname__) for cls in (*ESTIMATOR_CLASSES, *NUMPY_SCALARS)}
    | {("numpy", "dtype"), ("numpy", "ndarray"), ("numpy", "number")}
    | {("builtins", name) for name in ("dict", "list", "tuple", "set", "str", "bytes", "int",
                                        "float", "bool", "NoneType", "slice", "object")}
)

# What pickle protocols 0-2 name to rebuild objects and bytes; joblib.dump never writes them.
OLD_PROTOCOL_GLOBALS: frozenset[tuple[str, str]] = frozenset(
    {("_codecs", "encode"), ("copyreg", "_reconstructor"), ("copy_reg", "_reconstructor"),
     ("__builtin__", "object"), ("__builtin__", "set"), ("__builtin__", "slice")}
)


def skops_trusted() -> list[str]:
    """The allow-list as the ``trusted`` argument of ``skops.io.load``."""
    return sorted(f"{module}.{name}" for module, name in SKOPS_TYPES)
