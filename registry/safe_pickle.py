"""Load uploaded joblib and pickle files without running any code they ask for.

A pickle can call anything it can name. The unpicklers here name only an allow-list of classes and
functions (the supported models, their pipeline steps and the NumPy types they are made of), and
refuse the few pickle moves a real model file never makes.
"""
from __future__ import annotations

import io
import pickle
from dataclasses import dataclass
from types import BuiltinFunctionType, FunctionType

import numpy as np
import sklearn
from joblib.numpy_pickle import NumpyArrayWrapper, NumpyUnpickler
from joblib.numpy_pickle_utils import _ZFILE_PREFIX, _validate_fileobject_and_memmap
from sklearn.base import BaseEstimator
from sklearn.compose import make_column_selector
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.tree._tree import TREE_LEAF, Tree

from registry.errors import InvalidArtifact, RegistryError, UnsafeArtifact
from registry.supported_estimators import MODELS, PREPROCESSORS, accepted_models, accepted_steps

_INTERNAL_CLASSES = (
    Tree,
    NumpyArrayWrapper,  # joblib's stand-in for each array in a joblib file
    make_column_selector,  # a ColumnTransformer's column choice
    FunctionTransformer,  # how a fitted ColumnTransformer stores "passthrough"
)

ALLOWED_GLOBALS: frozenset[tuple[str, str]] = frozenset(
    {(cls.__module__, cls.__qualname__) for cls in (*MODELS, *PREPROCESSORS, *_INTERNAL_CLASSES)}
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


@dataclass(frozen=True)
class LoadedArtifact:
    """An estimator loaded from an upload, and the scikit-learn version it was pickled with."""

    estimator: BaseEstimator
    sklearn_version: str | None


def load_estimator(data: bytes) -> LoadedArtifact:
    """Unpickle an uploaded joblib or pickle file, admitting only allow-listed types."""
    if not data:
        raise InvalidArtifact(
            "artifact is empty: upload the file written by joblib.dump(model, path)"
        )
    if data.startswith(_ZFILE_PREFIX):
        raise InvalidArtifact("artifact was written by joblib older than 0.10: dump it again")
    try:
        with _validate_fileobject_and_memmap(io.BytesIO(data), "") as (fileobj, _):
            unpickler = _JoblibUnpickler(fileobj)
            estimator = unpickler.load()
        _check_top_level(estimator)
        _check_trees(estimator)
    except RegistryError:
        raise
    except Exception as exc:  # anything a malformed file makes the unpicklers raise
        raise InvalidArtifact(_not_a_model_file(exc)) from exc
    return LoadedArtifact(estimator, unpickler.sklearn_version)


class _Guards:
    """The checks both unpicklers share: what may be named, built and called."""

    sklearn_version: str | None = None

    def find_class(self, module: str, name: str):
        """Resolve an allow-listed global; refuse everything else before importing anything."""
        module = _numpy2_module(module)
        if (module, name) not in ALLOWED_GLOBALS:
            raise UnsafeArtifact(
                f"artifact refers to {module}.{name}, which is not an allowed scikit-learn, NumPy "
                f"or SciPy type; only the supported models ({accepted_models()}), the pipeline "
                f"steps {accepted_steps()} and the NumPy types they are made of are accepted"
            )
        return super().find_class(module, name)

    def load_reduce(self):
        """REDUCE, except on an estimator class: real files rebuild estimators from state."""
        func = self.stack[-2]
        if isinstance(func, type) and issubclass(func, BaseEstimator):
            raise UnsafeArtifact(
                f"artifact calls {func.__name__}(...) itself; a model file only restores state"
            )
        pickle._Unpickler.load_reduce(self)

    def _check_build(self):
        target, state = self.stack[-2], self.stack[-1]
        # BUILD on a class or function would set attributes on it for the whole process.
        if isinstance(target, (type, FunctionType, BuiltinFunctionType)):
            raise UnsafeArtifact(
                f"artifact tries to change {getattr(target, '__name__', 'a type')} itself; "
                "a model file only sets the state of the objects it makes"
            )
        if isinstance(target, BaseEstimator):
            self.sklearn_version = _check_sklearn_version(state)
        if isinstance(target, FunctionTransformer):
            _check_passthrough(state)


class _ObjectArrayUnpickler(_Guards, pickle._Unpickler):
    """Reads the plain pickle stream a joblib file holds for each object-dtype array."""

    dispatch = pickle._Unpickler.dispatch.copy()

    def load_build(self):
        """BUILD after the shared checks."""
        self._check_build()
        pickle._Unpickler.load_build(self)

    dispatch[pickle.BUILD[0]] = load_build
    dispatch[pickle.REDUCE[0]] = _Guards.load_reduce


class _JoblibUnpickler(_Guards, NumpyUnpickler):
    """joblib's unpickler (arrays stored after their wrappers), with the shared checks."""

    dispatch = NumpyUnpickler.dispatch.copy()

    def __init__(self, fileobj):
        super().__init__("", fileobj, ensure_native_byte_order=True)

    def load_build(self):
        """BUILD after the shared checks, then swap an array wrapper for the array it announces."""
        self._check_build()
        pickle._Unpickler.load_build(self)
        if isinstance(self.stack[-1], NumpyArrayWrapper):
            self.stack.append(self._read_array(self.stack.pop()))

    def _read_array(self, wrapper: NumpyArrayWrapper) -> np.ndarray:
        if wrapper.dtype.hasobject:
            # Some joblib versions read these with a bare pickle.load: never hand them the stream.
            return _ObjectArrayUnpickler(self.file_handle).load()
        return wrapper.read(self, self.ensure_native_byte_order)

    dispatch[pickle.BUILD[0]] = load_build
    dispatch[pickle.REDUCE[0]] = _Guards.load_reduce


def _numpy2_module(module: str) -> str:
    """Files pickled under NumPy 1 name ``numpy.core``, which NumPy 2 calls ``numpy._core``."""
    if module == "numpy.core" or module.startswith("numpy.core."):
        return "numpy._core" + module[len("numpy.core") :]
    return module


def _check_sklearn_version(state) -> str:
    running = sklearn.__version__
    version = state.get("_sklearn_version") if isinstance(state, dict) else None
    if version != running:
        made_with = version if isinstance(version, str) else "an unknown version"
        raise InvalidArtifact(
            f"artifact was made with scikit-learn {made_with}; this server runs {running}: "
            f"retrain with {running}"
        )
    return version


def _check_passthrough(state) -> None:
    holds_functions = not isinstance(state, dict) or any(
        state.get(key) is not None for key in ("func", "inverse_func")
    )
    if holds_functions:
        raise UnsafeArtifact(
            "artifact holds a FunctionTransformer with a function, which cannot be loaded safely; "
            "only ColumnTransformer's 'passthrough' is accepted"
        )


def _check_top_level(obj) -> None:
    if not isinstance(obj, BaseEstimator):
        raise InvalidArtifact(
            f"artifact holds a {type(obj).__name__}, not a scikit-learn estimator: "
            "dump the fitted model itself with joblib.dump(model, path)"
        )


def _check_trees(estimator: BaseEstimator) -> None:
    """Refuse trees whose nodes would make predict read outside its arrays or loop forever.

    scikit-learn walks tree nodes in compiled code without bounds checks and trusts the file.
    """
    model = estimator.steps[-1][1] if isinstance(estimator, Pipeline) else estimator
    kind = MODELS.get(type(model), (None,))[0]
    if kind == "tree":
        _check_tree(model.tree_, int(model.n_features_in_))
    elif kind == "forest":
        for tree_model in model.estimators_:
            _check_tree(tree_model.tree_, int(model.n_features_in_))


_BROKEN_TREE = "artifact holds a decision tree whose nodes point outside the tree or its features"


def _check_tree(tree, n_features: int) -> None:
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


def _not_a_model_file(exc: Exception) -> str:
    if isinstance(exc, EOFError):
        reason = "it ends too early (a truncated upload?)"
    else:
        reason = str(exc)[:200] or type(exc).__name__
    return (
        f"artifact is not a joblib or pickle file of a scikit-learn model: {reason}; "
        "upload the file written by joblib.dump(model, path) or pickle.dump(model, file)"
    )
