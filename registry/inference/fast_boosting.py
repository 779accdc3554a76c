"""Exact, fast inference for boosted trees: every tree as wide node records, walked in C, summed from a baseline.

A boosted model compiles once per load to one array of 24-byte records over all its trees
(``registry.inference.tree_walk.WIDE_NODE``: a float64 threshold, the column with its NaN and categorical
flags, a categorical split's 256-bit set, two children), each tree's output column, each leaf's value,
the categorical sets and the baseline. The walker (``native/tree_walk.c``, ``tree_walk_boosted``)
starts every (row, output) at the baseline and adds each tree's leaf value in tree order, in double
precision; then the library's own link gives the answer. (A batch of a model of numeric splits and float32
rows, XGBoost's or GradientBoosting's, walks a copy of its trees laid out for batches, made from the records
in the worker's own memory: ``tree_walk.COMPACT_FROM_ROWS``; the same sums in the same order.) It is bit for
bit what scikit-learn 1.9 gives:

- **HistGradientBoosting**: rows in float64 (``validate_data(dtype=float64)``), ``x <= threshold`` in
  float64, a NaN where the node's ``missing_go_to_left`` says; the baseline is ``0.0 +
  _baseline_prediction`` (``np.zeros`` then ``+=``); trees of an iteration go to the columns 0..K-1.
  Categorical columns are encoded as the model's own ``OrdinalEncoder`` encodes them (a category's index
  among its fitted categories; an unseen one, or one the bin mapper does not know, is NaN) and a
  categorical split sends a code left where its bit is set in the tree's ``raw_left_cat_bitsets``, a NaN
  where a missing value goes. The column order of the model's ColumnTransformer (categorical columns
  first) is folded into the records, so the rows are used as they come.
- **GradientBoosting**: rows cast to float32 (``validate_data(dtype=float32)``) and compared in float64
  with the float64 thresholds (exact: a float32 is a float64), a NaN going right as ``x <= t`` is false;
  each leaf's value is stored as ``learning_rate * value`` (the product scikit-learn adds); the baseline
  is the default init's raw prediction (the same for every row), or zeros for ``init="zero"``.
- the link: identity (squared, absolute, quantile, Huber losses), ``exp`` (Poisson, gamma), ``expit`` of
  the raw value (binary log-loss; of twice it for the exponential loss) with ``1 - p`` for the other
  class, and scikit-learn's ``softmax`` for more classes, over the raw values in the memory order
  scikit-learn holds them (Fortran for HistGradientBoosting, C for GradientBoosting: the order NumPy
  sums a row in). ``predict`` of a binary classifier takes ``raw > 0`` (HistGradientBoosting) or
  ``raw >= 0`` (GradientBoosting), of more classes ``argmax``.

The same form is meant to carry the boosters of other libraries, parsed from their files:

- **XGBoost** compares a float32 value with ``x < threshold``: stored as ``x <= the largest float32 below
  the threshold``, with rows cast to float32 as for GradientBoosting (an infinite one refused, as XGBoost
  refuses it); its leaves are summed in float32 (``float32_sums``: the walker rounds every sum to
  float32); ``base_score`` is the baseline (in margin space), each tree goes to its ``tree_info`` column,
  and XGBoost's float32 sigmoid and softmax (``tree_walk.xgboost_link``) make the answer. Read from the
  file by ``registry.artifacts.loading.xgboost_files``.
- **LightGBM** reads a row's values within ``kZeroThreshold`` of zero as zero (``lightgbm_rows``),
  compares doubles with ``x <= threshold`` and sums from 0.0 in float64 in tree order as this form does;
  a node whose missing type is None sends a NaN where a zero goes, one whose type is Zero sends a zero
  where a NaN goes (``ZERO_MISSING``); its categorical splits test ``int(x)`` against a bitset of any
  length (the node's set spans as many 256-bit blocks as it needs, its threshold their bits), and a NaN,
  a negative category or one past the set goes right. Its links (``tree_walk.lightgbm_link``) are
  computed in double precision with the C library's ``exp``. Read from the file by
  ``registry.artifacts.loading.lightgbm_files``, with its nodes' counts as covers for ``explain``.
"""
from __future__ import annotations

import numpy as np

from registry.inference.fast_trees import best_of_rows
from registry.inference.compiled_form import CompiledForm
from registry.inference.tree_walk import (
    BITSET_WORDS,
    BLOCK_BITS,
    CATEGORICAL,
    MAX_NODES,
    NAN_LEFT,
    WIDE_NODE,
    BoostedWalker,
    InvalidNodes,
    lightgbm_link,
    xgboost_link,
)

# scikit-learn's links, by class name, as this form names them.
_LINKS = {"IdentityLink": "identity", "LogLink": "exp", "LogitLink": "expit", "HalfLogitLink": "expit_of_double",
          "MultinomialLogit": "softmax"}
# XGBoost's, computed in float32 as XGBoost computes them (registry.artifacts.loading.xgboost_files).
_XGBOOST_LINKS = ("xgboost_identity", "xgboost_sigmoid", "xgboost_softmax")
# LightGBM's ConvertOutput, by objective (registry.artifacts.loading.lightgbm_files): a binary classifier's
# sigmoid, a multiclass one's softmax, multiclassova's sigmoid of each class; a regressor's identity, exp
# (poisson, gamma, tweedie), sign(x) * x * x (regression with reg_sqrt) and sigmoid (cross_entropy).
_LIGHTGBM_LINKS = ("lightgbm_sigmoid", "lightgbm_softmax", "lightgbm_ova", "lightgbm_identity", "lightgbm_exp",
                   "lightgbm_square", "lightgbm_logistic")


def _check_classes(classes: np.ndarray | None, link: str, n_outputs: int) -> None:
    """Raise InvalidNodes unless ``classes`` can name every answer: none (a regressor, which an XGBoost
    classifier's link is not), or one dimension of at least two classes and at least one for each output; and
    unless a binary XGBoost classifier has the one output its link reads."""
    if link == "xgboost_sigmoid" and n_outputs != 1:
        raise InvalidNodes(f"a binary XGBoost classifier with {n_outputs} outputs, not one")
    if classes is None:
        if link in ("xgboost_sigmoid", "xgboost_softmax"):
            raise InvalidNodes("an XGBoost classifier without its classes")
        return
    if not isinstance(classes, np.ndarray) or classes.ndim != 1 or len(classes) < max(2, n_outputs):
        raise InvalidNodes(f"classes that cannot name each of the model's {n_outputs} outputs")


class CompiledBoosting(CompiledForm):
    """A boosted model as wide node records and plain arrays, answering ``predict`` and ``predict_proba``.

    Everything it holds is an array or a plain value, so that it can be stored and mapped as it is.
    """

    _BUILT = frozenset({"_walker", "_walker_rounds", "_expit", "_explainer"})  # made from the state, not part of it

    def __init__(self, *, nodes: np.ndarray, roots: np.ndarray, columns: np.ndarray, value: np.ndarray,
                 bitsets: np.ndarray, baseline: np.ndarray, n_features: int, float32_rows: bool,
                 categorical_columns: np.ndarray, categories: list, codes: list, link: str, classes: np.ndarray | None,
                 zero_is_positive: bool, fortran_raw: bool, float32_sums: bool = False, lightgbm_rows: bool = False,
                 link_scale: float = 1.0, cover: np.ndarray | None = None):
        self.nodes, self.roots, self.columns, self.value = nodes, roots, columns, value
        self.bitsets, self.baseline = bitsets, baseline
        self.n_features = n_features
        self.float32_rows = float32_rows  # GradientBoosting: rows cast to float32 first
        self.categorical_columns = categorical_columns  # int64: the input columns encoded before the walk
        self.categories = categories  # by categorical column: its fitted categories, sorted float64
        self.codes = codes  # by categorical column: each category's code (float64), NaN where unknown to the model
        self.link = link
        self.classes = classes  # a classifier's classes_, else None
        self.zero_is_positive = zero_is_positive  # a binary classifier's raw 0 predicts the second class
        self.fortran_raw = fortran_raw  # the raw outputs are summed by softmax in Fortran order
        self.float32_sums = float32_sums  # XGBoost: leaves summed in float32
        self.lightgbm_rows = lightgbm_rows  # LightGBM: values within kZeroThreshold of zero read as zero
        self.link_scale = float(link_scale)  # LightGBM: its sigmoid's parameter
        self.cover = cover  # by node: the training data's weight (count) or hessian under it, for TreeSHAP
        if link not in _LINKS.values() and link not in _XGBOOST_LINKS and link not in _LIGHTGBM_LINKS:
            raise InvalidNodes(f"an unknown link {link!r}")
        if len(categories) != len(categorical_columns) or len(codes) != len(categories) or not all(
                c.dtype == np.float64 and k.shape == c.shape and k.dtype == np.float64 and c.ndim == 1
                for c, k in zip(categories, codes)):
            raise InvalidNodes("the categorical columns do not each have float64 categories and codes")
        if categorical_columns.dtype != np.int64 or ((categorical_columns < 0)
                                                     | (categorical_columns >= n_features)).any():
            raise InvalidNodes("a categorical column is past the model's")
        _check_classes(classes, link, len(baseline))
        # Rows rounded to float32 by the walker itself, in its call, where no category is encoded first.
        self._walker_rounds = float32_rows and not len(categorical_columns)
        self._walker = BoostedWalker(nodes, roots, columns, value, bitsets, baseline, n_features=n_features,
                                     float32_sums=float32_sums, lightgbm_rows=lightgbm_rows,
                                     float32_rows=self._walker_rounds)
        self._expit = None
        if link.startswith("expit"):
            from scipy.special import expit  # scikit-learn's own (``_expit`` on NumPy arrays)

            self._expit = expit

    def with_classes(self, classes: np.ndarray | None) -> CompiledBoosting:
        """The same model naming its classes ``classes`` (a file's classifier, whose classes its version names):
        it shares this one's arrays and walker."""
        _check_classes(classes, self.link, len(self.baseline))
        named = object.__new__(CompiledBoosting)
        named.__dict__.update(self.__dict__)
        named.classes = classes
        return named

    def predict(self, X: np.ndarray) -> np.ndarray:
        """The library's ``predict`` for these rows (XGBoost's and LightGBM's: their sklearn classifier's labels)."""
        raw = self._raw(X)
        if self.link.startswith("xgboost_"):
            return self._xgboost_predict(raw)
        if self.link.startswith("lightgbm_"):
            converted = self._lightgbm_output(raw)
            return converted[:, 0] if self.classes is None else self.classes[np.argmax(converted, axis=1)]
        if self.classes is None:
            return raw[:, 0] if self.link == "identity" else np.exp(raw[:, 0])
        if raw.shape[1] == 1:
            scores = raw[:, 0]
            return self.classes[((scores >= 0) if self.zero_is_positive else (scores > 0)).astype(np.intp)]
        return self.classes[best_of_rows(raw)]

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """scikit-learn's ``predict_proba`` for these rows (classifiers only)."""
        if self.classes is None:
            raise AttributeError("a regressor has no predict_proba")
        raw = self._raw(X)
        if self.link == "xgboost_sigmoid":
            return xgboost_link("sigmoid_pair", raw)
        if self.link == "xgboost_softmax":
            return xgboost_link("softmax", raw)
        if self.link.startswith("lightgbm_"):
            return self._lightgbm_output(raw)
        if raw.shape[1] == 1:
            return _both_classes(self._expit(2 * raw[:, 0] if self.link == "expit_of_double" else raw[:, 0]))
        scores = np.asfortranarray(raw) if self.fortran_raw else raw
        scores -= np.reshape(np.max(scores, axis=1), (-1, 1))
        np.exp(scores, out=scores)
        scores /= np.reshape(np.sum(scores, axis=1), (-1, 1))
        return scores

    def _lightgbm_output(self, raw: np.ndarray) -> np.ndarray:
        """``Booster.predict``'s answer (a binary classifier's as ``LGBMClassifier.predict_proba``: ``1 - p, p``)."""
        if self.link in ("lightgbm_sigmoid", "lightgbm_ova", "lightgbm_logistic"):
            converted = lightgbm_link("sigmoid", raw, self.link_scale)
            return _both_classes(converted[:, 0]) if self.link == "lightgbm_sigmoid" else converted
        if self.link == "lightgbm_softmax":
            return lightgbm_link("softmax", raw)
        if self.link == "lightgbm_exp":
            return lightgbm_link("exp", raw)
        if self.link == "lightgbm_square":
            sign = (raw > 0).astype(np.float64) - (raw < 0)  # Common::Sign: an int, so +0 at a zero
            return sign * raw * raw
        return raw

    def _xgboost_predict(self, raw: np.ndarray) -> np.ndarray:
        if self.link == "xgboost_identity":
            return raw[:, 0]
        if self.link == "xgboost_sigmoid":
            return self.classes[(xgboost_link("sigmoid", raw)[:, 0] > 0.5).astype(np.intp)]
        return self.classes[np.argmax(raw, axis=1)]

    def _explained(self) -> dict:
        return dict(nodes=self.nodes, roots=self.roots, value=self.value, cover=self.cover, n_features=self.n_features,
                    n_outputs=len(self.baseline), columns=self.columns, bitsets=self.bitsets, baseline=self.baseline,
                    lightgbm_rows=self.lightgbm_rows)

    def explain(self, X: np.ndarray, *, deadline: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Path-dependent TreeSHAP of the raw output (the margin a classifier's link takes; a regressor's
        prediction before any ``exp``) for these rows: ``(base_value, values)`` shaped (outputs,) and (rows,
        features, outputs), adding up to the raw output. XGBoost's are summed in float64, where its own
        margin is summed in float32: they add up to the float64 sum of the same leaves. LightGBM's are
        ``Booster.predict(pred_contrib=True)``'s, its rows read as the walker reads them. Raises
        ``NotExplainable`` naming why when it cannot, ``ExplanationTimedOut`` once ``deadline``
        (``time.monotonic()`` seconds) passed."""
        return self.explainer().explain(self._rows(X), deadline=deadline)

    def _raw(self, X: np.ndarray) -> np.ndarray:
        return self._walker.output(self._rows(X, rounded=not self._walker_rounds))

    def _rows(self, X: np.ndarray, *, rounded: bool = True) -> np.ndarray:
        """``X`` as the walk reads it: float64, C order, categories encoded, and (``rounded``, for a model that
        reads float32 rows) rounded to float32, refused where XGBoost refuses it."""
        rows = np.asarray(X)
        if rows.ndim != 2 or rows.shape[1] != self.n_features:
            raise ValueError(f"X has {rows.shape[-1]} features, but the model is expecting {self.n_features} features")
        if self.float32_rows and rounded:
            with np.errstate(over="ignore"):
                rows = rows.astype(np.float32)
            if self.float32_sums and np.isinf(rows).any():
                raise ValueError("Input data contains `inf` or a value too large for float32 (XGBoost refuses it)")
        rows = np.array(rows, dtype=np.float64, order="C", copy=bool(len(self.categorical_columns)) or None)
        for column, categories, codes in zip(self.categorical_columns.tolist(), self.categories, self.codes):
            rows[:, column] = _encoded(rows[:, column], categories, codes)
        return rows


def _both_classes(positive: np.ndarray) -> np.ndarray:
    """A binary classifier's ``predict_proba`` from its second class's probability per row: ``1 - p, p``."""
    proba = np.empty((len(positive), 2))
    proba[:, 1] = positive
    proba[:, 0] = 1 - proba[:, 1]
    return proba


def _encoded(values: np.ndarray, categories: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Each value's code among ``categories`` (OrdinalEncoder's transform), NaN where it is none of them."""
    if not len(categories):
        return np.full(len(values), np.nan)
    found = np.minimum(np.searchsorted(categories, values), len(categories) - 1)
    return np.where(categories[found] == values, codes[found], np.nan)


def compile_boosting(model) -> CompiledBoosting | None:
    """The compiled form of a fitted HistGradientBoosting or GradientBoosting model (checked on upload); None
    for another model, another link, an init estimator of one's own, or more nodes than int32 ids reach."""
    from sklearn.dummy import DummyClassifier, DummyRegressor
    from sklearn.ensemble import (
        GradientBoostingClassifier,
        GradientBoostingRegressor,
        HistGradientBoostingClassifier,
        HistGradientBoostingRegressor,
    )

    link = _LINKS.get(type(getattr(getattr(model, "_loss", None), "link", None)).__name__)
    classes = getattr(model, "classes_", None)
    if link is None or classes is not None and not isinstance(classes, np.ndarray):
        return None
    if type(model) in (HistGradientBoostingClassifier, HistGradientBoostingRegressor):
        return _histogram(model, link, classes)
    if type(model) in (GradientBoostingClassifier, GradientBoostingRegressor):
        if not (isinstance(model.init_, str) and model.init_ == "zero" or type(model.init_) in (DummyClassifier,
                                                                                              DummyRegressor)):
            return None
        return _staged(model, link, classes)
    return None


def _histogram(model, link: str, classes) -> CompiledBoosting | None:
    n_features = int(model.n_features_in_)
    categorical_remapped = model._bin_mapper.is_categorical_
    order = np.arange(n_features)  # the input column of each column the trees test
    categorical_columns, categories, codes = [], [], []
    if model._preprocessor is not None:
        is_categorical = np.asarray(model.is_categorical_, dtype=bool)
        order = np.concatenate([np.flatnonzero(is_categorical), np.flatnonzero(~is_categorical)])
        encoder = model._preprocessor.named_transformers_["encoder"]
        for position, (column, fitted) in enumerate(zip(np.flatnonzero(is_categorical), encoder.categories_)):
            if fitted.dtype.kind != "f":
                return None  # categories given as strings: served by the model itself
            fitted = fitted[~np.isnan(fitted)]
            known = np.asarray(model._bin_mapper.bin_thresholds_[position])
            indices = np.arange(len(fitted), dtype=np.float64)
            categorical_columns.append(int(column))
            categories.append(np.ascontiguousarray(fitted, dtype=np.float64))
            codes.append(np.where(np.isin(indices, known), indices, np.nan))
    elif categorical_remapped is not None and np.any(categorical_remapped):
        return None
    trees = [(predictor, k) for iteration in model._predictors for k, predictor in enumerate(iteration)]
    sizes = np.array([len(predictor.nodes) for predictor, _ in trees])
    if sizes.sum() > MAX_NODES:
        return None
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    set_offsets = np.concatenate([[0], np.cumsum([len(p.raw_left_cat_bitsets) for p, _ in trees])[:-1]])
    nodes = np.zeros(int(sizes.sum()), dtype=WIDE_NODE)
    for (predictor, _), offset, set_offset in zip(trees, offsets, set_offsets):
        source = predictor.nodes
        leaf = source["is_leaf"] != 0
        ids = np.arange(len(source)) + offset
        records = nodes[offset:offset + len(source)]
        categorical = (source["is_categorical"] != 0) & ~leaf
        records["threshold"] = np.where(leaf, np.inf, np.where(categorical, BLOCK_BITS, source["num_threshold"]))
        feature = np.where(leaf, 0, order[np.where(leaf, 0, source["feature_idx"])]).astype(np.uint32)
        feature |= np.where(~leaf & (source["missing_go_to_left"] != 0), NAN_LEFT, 0).astype(np.uint32)
        feature |= np.where(categorical, CATEGORICAL, 0).astype(np.uint32)
        records["feature"] = feature
        records["bitset"] = np.where(categorical, source["bitset_idx"] + set_offset, 0)
        records["child"][:, 0] = np.where(leaf, ids, source["right"].astype(np.int64) + offset)
        records["child"][:, 1] = np.where(leaf, ids, source["left"].astype(np.int64) + offset)
    bitsets = [p.raw_left_cat_bitsets for p, _ in trees]
    return CompiledBoosting(
        nodes=nodes,
        roots=offsets.astype(np.int32),
        columns=np.array([k for _, k in trees], dtype=np.int32),
        value=np.ascontiguousarray(np.concatenate([p.nodes["value"] for p, _ in trees]), dtype=np.float64),
        bitsets=np.ascontiguousarray(np.concatenate(bitsets) if bitsets else np.zeros((0, BITSET_WORDS)),
                                     dtype=np.uint32),
        baseline=np.zeros(model.n_trees_per_iteration_) + model._baseline_prediction[0],
        n_features=n_features,
        float32_rows=False,
        categorical_columns=np.array(categorical_columns, dtype=np.int64),
        categories=categories,
        codes=codes,
        link=link,
        classes=classes,
        zero_is_positive=False,
        fortran_raw=True,
        cover=np.ascontiguousarray(np.concatenate([p.nodes["count"] for p, _ in trees]), dtype=np.float64),
    )


def _staged(model, link: str, classes) -> CompiledBoosting | None:
    n_features = int(model.n_features_in_)
    stages = model.estimators_
    trees = [(stages[i, k].tree_, k) for i in range(stages.shape[0]) for k in range(stages.shape[1])]
    sizes = np.array([tree.node_count for tree, _ in trees])
    if sizes.sum() > MAX_NODES:
        return None
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    nodes = np.zeros(int(sizes.sum()), dtype=WIDE_NODE)
    for (tree, _), offset in zip(trees, offsets):
        ids = np.arange(tree.node_count) + offset
        leaf = tree.children_left == -1
        records = nodes[offset:offset + tree.node_count]
        records["threshold"] = np.where(leaf, np.inf, tree.threshold)
        records["feature"] = np.where(leaf, 0, tree.feature).astype(np.uint32)
        records["child"][:, 0] = np.where(leaf, ids, tree.children_right + offset)
        records["child"][:, 1] = np.where(leaf, ids, tree.children_left + offset)
    value = np.concatenate([model.learning_rate * tree.value[:, 0, 0] for tree, _ in trees])
    baseline = model._raw_predict_init(np.zeros((1, n_features), dtype=np.float32))[0]
    return CompiledBoosting(
        nodes=nodes,
        roots=offsets.astype(np.int32),
        columns=np.array([k for _, k in trees], dtype=np.int32),
        value=np.ascontiguousarray(value, dtype=np.float64),
        bitsets=np.zeros((0, BITSET_WORDS), dtype=np.uint32),
        baseline=np.ascontiguousarray(baseline, dtype=np.float64),
        n_features=n_features,
        float32_rows=True,
        categorical_columns=np.zeros(0, dtype=np.int64),
        categories=[],
        codes=[],
        link=link,
        classes=classes,
        zero_is_positive=True,
        fortran_raw=False,
        cover=np.ascontiguousarray(np.concatenate([tree.weighted_n_node_samples for tree, _ in trees]),
                                   dtype=np.float64),
    )
