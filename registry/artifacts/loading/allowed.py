"""The one allow-list of what a model file may name, for pickles and for skops files alike.

It is built from the table of supported kinds (``registry.artifacts.supported_estimators``), the internal
classes those models are made of, and the NumPy and builtin types they hold. docs/artifacts.md
lists it for users; refusals point there rather than repeating it.
"""
from __future__ import annotations

import importlib

import numpy as np
from joblib.numpy_pickle import NumpyArrayWrapper
from numpy.random import MT19937, PCG64, Generator, RandomState, SeedSequence
from sklearn._loss import _loss, link, loss
from sklearn.compose import make_column_selector
from sklearn.dummy import DummyClassifier, DummyRegressor
from sklearn.ensemble._hist_gradient_boosting.binning import _BinMapper
from sklearn.ensemble._hist_gradient_boosting.predictor import TreePredictor
from sklearn.preprocessing import FunctionTransformer, LabelEncoder
from sklearn.tree._classes import DecisionTreeRegressor
from sklearn.tree._tree import Tree
from sklearn.utils.validation import check_array

from registry.artifacts.supported_estimators import MODELS, PREPROCESSORS

INTERNAL_CLASSES: tuple[type, ...] = (
    Tree,
    make_column_selector,  # a ColumnTransformer's column choice
    FunctionTransformer,  # how a fitted ColumnTransformer stores "passthrough"
    DecisionTreeRegressor,  # each stage of a GradientBoosting model
    DummyClassifier,  # a GradientBoosting model's default init_
    DummyRegressor,
    TreePredictor,  # each tree of a HistGradientBoosting model
    _BinMapper,  # a HistGradientBoosting model's bins and known categories
    LabelEncoder,  # a HistGradientBoosting classifier's classes
)

# A boosted model's loss: the Python object, the compiled one it wraps, its link and their intervals.
LOSS_CLASSES: tuple[type, ...] = (
    loss.HalfSquaredError, loss.AbsoluteError, loss.PinballLoss, loss.HuberLoss, loss.HalfPoissonLoss,
    loss.HalfGammaLoss, loss.HalfBinomialLoss, loss.HalfMultinomialLoss, loss.ExponentialLoss,
    _loss.CyHalfSquaredError, _loss.CyAbsoluteError, _loss.CyPinballLoss, _loss.CyHuberLoss, _loss.CyHalfPoissonLoss,
    _loss.CyHalfGammaLoss, _loss.CyHalfBinomialLoss, _loss.CyHalfMultinomialLoss, _loss.CyExponentialLoss,
    link.IdentityLink, link.LogLink, link.LogitLink, link.HalfLogitLink, link.MultinomialLogit, link.Interval,
)

# The random generators a boosted model keeps from its fit, and the functions NumPy pickles them with.
BIT_GENERATORS: tuple[type, ...] = (PCG64, MT19937)
RANDOM_CLASSES: tuple[type, ...] = (Generator, RandomState, *BIT_GENERATORS, SeedSequence)
RANDOM_CONSTRUCTORS: frozenset[tuple[str, str]] = frozenset({
    ("numpy.random._pickle", "__bit_generator_ctor"),
    ("numpy.random._pickle", "__generator_ctor"),
    ("numpy.random._pickle", "__randomstate_ctor"),
})
# Cython's functions that restore a compiled object's fields: (module, name) -> the class it restores.
CYTHON_RESTORERS: dict[tuple[str, str], type] = {
    (cls.__module__, f"__pyx_unpickle_{cls.__qualname__}"): cls
    for cls in (SeedSequence, *(cls for cls in LOSS_CLASSES if cls.__module__ == _loss.__name__))
    if hasattr(importlib.import_module(cls.__module__), f"__pyx_unpickle_{cls.__qualname__}")
}
# A HistGradientBoosting model with categorical features checks its numeric columns with
# functools.partial(check_array, ...): the only function a model file may name, and only that way.
CHECK_ARRAY = check_array

ESTIMATOR_CLASSES: tuple[type, ...] = (*MODELS, *PREPROCESSORS, *INTERNAL_CLASSES)
BOOSTING_PARTS: tuple[type, ...] = (*LOSS_CLASSES, *RANDOM_CLASSES)

# Scalars an estimator may hold (np.float64(0.5)) or name as a dtype (OneHotEncoder(dtype=...)).
NUMPY_SCALARS: tuple[type, ...] = (
    np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64,
    np.float16, np.float32, np.float64, np.longdouble, np.str_,
)

ALLOWED_GLOBALS: frozenset[tuple[str, str]] = frozenset(
    {(cls.__module__, cls.__qualname__) for cls in (*ESTIMATOR_CLASSES, *BOOSTING_PARTS, NumpyArrayWrapper)}
    | RANDOM_CONSTRUCTORS
    | set(CYTHON_RESTORERS)
    | {(check_array.__module__, check_array.__qualname__), ("functools", "partial")}
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
