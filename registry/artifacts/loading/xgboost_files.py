"""XGBoost models saved with ``save_model`` (JSON or UBJSON), read without XGBoost into a ``CompiledBoosting``.

XGBoost's CPU predictor casts a row to float32, goes left where ``x < split_condition`` (float32) or
where a missing value (NaN) meets ``default_left``, starts every output at ``base_score`` in margin
space (``binary:logistic``: ``-logf(1 / base_score - 1)``) and adds each tree's leaf value to its
group (``tree_info``) in float32, in tree order; then ``binary:logistic`` takes its float32 sigmoid
and ``multi:softprob`` its float32 softmax. The records say ``x <= the largest float32 below the
condition`` (the same answer for every float32 ``x``) and the walker sums in float32.

A loaded Booster's ``predict`` uses every tree, whatever ``best_iteration`` says, and so does this.
Categorical splits, other objectives and leaf values that are not finite numbers are refused, by name.
A JSON file is read by ``xgboost_json`` (linear time, memory bounded by the file), a UBJSON one by
``ubjson``; the trees are checked and renumbered from their roots by ``xgboost_trees``.
"""
from __future__ import annotations

import ctypes
import ctypes.util

import numpy as np

from registry.artifacts.loading import ubjson, xgboost_json, xgboost_trees
from registry.errors import ArtifactTooLarge, InvalidArtifact
from registry.inference.fast_boosting import CompiledBoosting
from registry.inference.tree_walk import BITSET_WORDS

MAX_TREES = 100_000
MAX_NODES = 20_000_000
MAX_CLASSES = 10_000
_LINKS = {"binary:logistic": "xgboost_sigmoid", "multi:softprob": "xgboost_softmax",
          "multi:softmax": "xgboost_softmax", "reg:squarederror": "xgboost_identity"}
_LIBM = ctypes.CDLL(ctypes.util.find_library("m"))
_LIBM.logf.argtypes, _LIBM.logf.restype = [ctypes.c_float], ctypes.c_float


def is_xgboost(head: bytes) -> bool:
    """Whether a file's first bytes look like an XGBoost model file's: a JSON or UBJSON object (``{``);
    no pickle, joblib or zip file starts so."""
    return head.lstrip()[:1] == b"{"


def read_upload(source, max_bytes: int) -> bytes:
    """The bytes of an uploaded file (bytes, or a binary file read from its start), refused past ``max_bytes``."""
    if isinstance(source, bytes):
        data = source
    else:
        source.seek(0)
        data = source.read(max_bytes + 1)
        source.seek(0)
    if len(data) > max_bytes:
        raise ArtifactTooLarge(f"artifact is larger than MAX_MODEL_MB ({max_bytes // 2**20} MB): upload a smaller "
                               "model, or ask the operator to raise MAX_MODEL_MB (see docs/artifacts.md)")
    return data


def check_width(form: CompiledBoosting, max_features: int | None) -> None:
    """Refuse (413) a model of more than ``max_features`` columns (``MAX_FEATURES``; None: no bound)."""
    if max_features is not None and form.n_features > max_features:
        raise ArtifactTooLarge(f"the model takes {form.n_features:,} features; at most {max_features:,} are accepted "
                               "(MAX_FEATURES, see docs/artifacts.md)")


def read_xgboost(data: bytes, classes: list | None = None, max_features: int | None = None,
                 ) -> tuple[CompiledBoosting, list[str] | None]:
    """The compiled form of the XGBoost model ``data`` (JSON or UBJSON bytes) and its feature names; ``classes`` name a
    classifier's classes (``0 … k-1`` when None); ``max_features`` bounds the UBJSON file's strings (``ubjson.loads``).
    Raises ``InvalidArtifact`` naming what is wrong."""
    document, parsed = _document(data, max_features)
    try:
        learner = document["learner"]
        parameters = learner["learner_model_param"]
        objective = learner["objective"]["name"]
        booster = learner["gradient_booster"]
        if booster.get("name") != "gbtree":
            raise InvalidArtifact(f"XGBoost booster {booster.get('name')!r}: only gbtree models are served")
        model = booster["model"]
        trees, tree_info = model["trees"], np.asarray(model["tree_info"])
        n_features = int(parameters["num_feature"])
        n_classes = int(parameters.get("num_class", 0))
        base_score = parameters["base_score"]
        names = learner.get("feature_names") or None
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise InvalidArtifact(f"XGBoost model: a required field is missing or malformed ({error})") from None
    if objective not in _LINKS:
        raise InvalidArtifact(f"XGBoost objective {objective!r} is not served: use one of {sorted(_LINKS)}")
    if not 0 < n_features <= 1_000_000:
        raise InvalidArtifact(f"XGBoost model: num_feature {n_features} is not between 1 and 1,000,000")
    if not isinstance(trees, list) or not 0 < len(trees) <= MAX_TREES or tree_info.shape != (len(trees),) \
            or tree_info.dtype.kind not in "iu":
        raise InvalidArtifact(f"XGBoost model: between 1 and {MAX_TREES:,} trees, each with its tree_info, are served")
    n_outputs = n_classes if objective.startswith("multi:") else 1
    if objective.startswith("multi:") and not 2 <= n_classes <= MAX_CLASSES:
        raise InvalidArtifact(f"XGBoost model: num_class {n_classes} is not between 2 and {MAX_CLASSES}")
    if ((tree_info < 0) | (tree_info >= n_outputs)).any():
        raise InvalidArtifact("XGBoost model: a tree's tree_info names an output past the model's")
    baseline = _baseline(base_score, objective, n_outputs)
    xgboost_trees.check_trees(trees, parsed)
    nodes, values, roots, cover = xgboost_trees.records(parsed, n_features, MAX_NODES)
    if classes is None and objective != "reg:squarederror":
        classes = list(range(max(n_outputs, 2)))
    if classes is not None and (not isinstance(classes, list) or len(classes) != max(n_outputs, 2)
                                or len(set(map(repr, classes))) != len(classes)
                                or not all(isinstance(c, (str, int)) and not isinstance(c, bool) for c in classes)):
        raise InvalidArtifact(f"the metadata's classes must be {max(n_outputs, 2)} distinct strings or integers, "
                              "one per class of the model")
    form = CompiledBoosting(
        nodes=nodes, roots=roots, columns=tree_info.astype(np.int32), value=values,
        bitsets=np.zeros((0, BITSET_WORDS), dtype=np.uint32), baseline=baseline, n_features=n_features,
        float32_rows=True, categorical_columns=np.zeros(0, dtype=np.int64), categories=[], codes=[],
        link=_LINKS[objective], classes=None if classes is None else np.asarray(classes),
        zero_is_positive=False, fortran_raw=False, float32_sums=True, cover=cover)
    named = isinstance(names, list) and len(names) == n_features and all(isinstance(name, str) for name in names)
    return form, (names if named else None)


def _document(data: bytes, max_features: int | None) -> tuple[dict, xgboost_trees.Trees | None]:
    """The file's object, each tree's object taken out by its reader, and the trees' arrays (None without a tree)."""
    data = data if isinstance(data, bytes) else bytes(data)
    if data[:1] == b"{" and data[1:2] in (b"L", b"l", b"I", b"U", b"i", b"}", b"#", b"$"):
        objects = xgboost_trees.TreeObjects(MAX_TREES)
        document = ubjson.loads(data, object_hook=objects.hook, max_features=max_features)
        trees = objects.trees()
    else:
        document, trees = xgboost_json.loads(data, MAX_TREES)
    if not isinstance(document, dict) or "learner" not in document:
        raise InvalidArtifact("not an XGBoost model: the file's object has no 'learner'")
    return document, trees


def _baseline(base_score, objective: str, n_outputs: int) -> np.ndarray:
    text = str(base_score).strip().strip("[]")
    try:
        scores = np.array([float(part) for part in text.split(",")], dtype=np.float32)
    except ValueError:
        raise InvalidArtifact(f"XGBoost model: base_score {str(base_score)[:40]!r} is not a number") from None
    if len(scores) == 1:
        scores = np.repeat(scores, n_outputs)
    if len(scores) != n_outputs or not np.isfinite(scores).all():
        raise InvalidArtifact("XGBoost model: base_score is not one finite number per output")
    if objective == "binary:logistic":
        if not (0 < scores[0] < 1):
            raise InvalidArtifact("XGBoost model: a logistic base_score is not between 0 and 1")
        one = np.float32(1)
        scores = np.array([-_LIBM.logf(float(one / s - one)) for s in scores], dtype=np.float32)
    return scores.astype(np.float64)
