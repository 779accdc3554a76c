"""LightGBM text files read without LightGBM: bit for bit ``lightgbm.Booster.predict`` (the oracle), raw sums and
converted answers, on random models of every served objective with NaN, zeros and categorical columns; hostile
files refused naming what is wrong."""
import functools
import re
import zlib

import numpy as np
import pytest

from registry.artifacts.loading.lightgbm_files import _atof, read_lightgbm
from registry.errors import InvalidArtifact

lgb = pytest.importorskip("lightgbm")
OBJECTIVES = {"binary": {}, "multiclass": {"num_class": 3}, "multiclassova": {"num_class": 4}, "regression": {},
              "regression_sqrt": {"objective": "regression", "reg_sqrt": True}, "regression_l1": {}, "huber": {},
              "fair": {}, "quantile": {}, "mape": {}, "poisson": {}, "gamma": {}, "tweedie": {}, "cross_entropy": {}}
ZERO = float(np.float32(1e-35))  # LightGBM's kZeroThreshold


def _train(rng, name, n_rows=300, **extra):
    """A random model of the objective ``name`` on columns with NaN, zeros and a categorical column (2)."""
    X = rng.normal(size=(n_rows, 5))
    X[:, 2] = rng.integers(0, int(rng.choice([8, 40, 600])), n_rows)
    X[rng.random(n_rows) < 0.2, 0] = np.nan
    X[rng.random(n_rows) < 0.3, 1] = 0.0
    signal = X[:, 1] + (X[:, 2] % 3 == 0) + np.nan_to_num(X[:, 0]) + rng.normal(scale=0.3, size=n_rows)
    params = {"objective": name, "num_leaves": int(rng.integers(2, 32)), "learning_rate": float(rng.uniform(0.05, 0.5)),
              "min_data_in_leaf": int(rng.integers(1, 20)), "min_data_per_group": 5, "cat_smooth": 1.0,
              "max_cat_to_onehot": int(rng.choice([4, 64])), "zero_as_missing": bool(rng.random() < 0.3),
              "use_missing": bool(rng.random() < 0.9), "verbose": -1, "num_threads": 1, "deterministic": True,
              **OBJECTIVES[name], **extra}
    if name in ("binary", "cross_entropy") or params.get("num_class"):
        y = np.digitize(signal, np.quantile(signal, np.linspace(0, 1, params.get("num_class", 2) + 1)[1:-1]))
        y = y.astype(float) if name != "cross_entropy" else 1 / (1 + np.exp(-signal))
    else:
        y = np.exp(signal / 3) if name in ("poisson", "gamma", "tweedie", "mape") else signal
    if name == "binary" and rng.random() < 0.5:
        params["sigmoid"] = float(rng.choice([0.3, 0.7, 1.7, 2.123456789]))
    return X, lgb.train(params, lgb.Dataset(X, y, categorical_feature=[2]), int(rng.integers(1, 25)))


def _awkward_rows(rng, booster, X):
    """Training rows, fresh ones, NaN, ±inf, zeros and values within kZeroThreshold of it, every threshold and its
    float64 neighbours, categories past every set, negative and fractional ones."""
    thresholds = np.array([float(t) for line in re.findall(r"^threshold=(.*)$", booster.model_to_string(), re.M)
                           for t in line.split()] or [0.0])
    ties = np.concatenate([thresholds, np.nextafter(thresholds, np.inf), np.nextafter(thresholds, -np.inf)])
    odd = [np.nan, np.inf, -np.inf, 0.0, -0.0, ZERO, -ZERO, np.nextafter(ZERO, 1), 1e-40, -1e-310, -0.5, -1.0,
           0.5, 255.0, 256.0, 599.9, 1e4, 2.0**31, 1e300]
    fresh = rng.choice(np.concatenate([ties, odd]), size=(200, X.shape[1]))
    categories = rng.integers(-3, 700, (100, 1)) + rng.choice([0.0, 0.5, -0.5], (100, 1))
    mixed = np.concatenate([rng.normal(size=(100, 2)), categories, rng.normal(size=(100, 2))], axis=1)
    return np.concatenate([X, fresh, mixed])


def _assert_answers_as_lightgbm(form, booster, rows):
    raw = booster.predict(rows, raw_score=True)
    np.testing.assert_array_equal(form._raw(rows).reshape(raw.shape), raw, strict=True)
    expected = booster.predict(rows)
    if form.classes is None:
        np.testing.assert_array_equal(form.predict(rows), expected, strict=True)
        return
    proba = np.stack([1 - expected, expected], axis=1) if expected.ndim == 1 else expected
    np.testing.assert_array_equal(form.predict_proba(rows), proba, strict=True)
    np.testing.assert_array_equal(form.predict(rows), form.classes[np.argmax(proba, axis=1)], strict=True)


@pytest.mark.parametrize("name", OBJECTIVES)
def test_random_models_answer_lightgbm_bit_for_bit(name):
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    for _ in range(12):
        X, trained = _train(rng, name)
        text = trained.model_to_string()
        form, names = read_lightgbm(text.encode())
        assert names is None and form.n_features == 5
        _assert_answers_as_lightgbm(form, lgb.Booster(model_str=text), _awkward_rows(rng, trained, X))


def test_models_with_every_missing_type_and_long_category_sets_are_what_they_test():
    """The random models hold what the walker's special cases are for: zero-as-missing and NaN nodes that
    send missing values left, and categorical sets longer than one 256-bit block."""
    rng = np.random.default_rng(11)
    texts = [_train(rng, "regression", n_rows=1500, zero_as_missing=z, max_cat_to_onehot=1, max_cat_threshold=200,
                    num_leaves=31)[1].model_to_string() for z in (False, True)]
    decisions = {int(d) for text in texts for line in re.findall(r"^decision_type=(.*)$", text, re.M)
                 for d in line.split()}
    assert {1, 2 << 2 | 2, 1 << 2 | 2} <= decisions, decisions  # categorical; NaN and Zero, default left
    words = [len(line.split()) for text in texts for line in re.findall(r"^cat_threshold=(.*)$", text, re.M)]
    assert max(words) > 8


def test_an_early_stopped_model_answers_with_the_trees_its_file_holds():
    rng = np.random.default_rng(3)
    X, y = rng.normal(size=(400, 4)), rng.integers(0, 2, 400)
    trained = lgb.train({"objective": "binary", "verbose": -1, "num_threads": 1}, lgb.Dataset(X[:300], y[:300]), 200,
                        valid_sets=[lgb.Dataset(X[300:], y[300:])], callbacks=[lgb.early_stopping(3, verbose=False)])
    assert 0 < trained.best_iteration < 200
    text = trained.model_to_string()  # num_iteration=None: the best iteration's trees, as save_model writes
    form, _ = read_lightgbm(text.encode())
    assert len(form.roots) == trained.best_iteration
    _assert_answers_as_lightgbm(form, lgb.Booster(model_str=text), X)


def test_hand_made_thresholds_at_zero_compare_tiny_values_as_lightgbm_reads_them():
    """A threshold of exactly 0 and of ±kZeroThreshold, with every missing type: the walk reads values within
    kZeroThreshold as zero before it compares, as LightGBM's dense rows do."""
    rng = np.random.default_rng(4)
    X, trained = _train(rng, "regression", num_leaves=2)
    text = re.sub(r"^tree_sizes=.*\n", "", trained.model_to_string(), flags=re.M)  # read tree by tree: edits fit
    rows = np.array([[v] * 5 for v in [0.0, -0.0, ZERO, -ZERO, np.nextafter(ZERO, 1), -np.nextafter(ZERO, 1), 1e-40,
                                       -1e-40, np.nan, 1.0, -1.0, np.inf, -np.inf]])
    for threshold in ["0", "1.0000000180025095e-35", "-1.0000000180025095e-35", "-0"]:
        for decision in (0, 2, 4, 6, 8, 10):
            edited = re.sub(r"^threshold=\S+$", f"threshold={threshold}", text, count=1, flags=re.M)
            edited = re.sub(r"^decision_type=\S+$", f"decision_type={decision}", edited, count=1, flags=re.M)
            form, _ = read_lightgbm(edited.encode())
            _assert_answers_as_lightgbm(form, lgb.Booster(model_str=edited), rows)


def test_feature_names_come_from_the_file_unless_they_are_lightgbm_defaults():
    rng = np.random.default_rng(5)
    X, y = rng.normal(size=(100, 3)), rng.normal(size=100)
    named = lgb.train({"verbose": -1, "num_threads": 1}, lgb.Dataset(X, y, feature_name=["a", "b", "c"]), 2)
    assert read_lightgbm(named.model_to_string().encode())[1] == ["a", "b", "c"]
    unnamed = lgb.train({"verbose": -1, "num_threads": 1}, lgb.Dataset(X, y), 2)
    assert read_lightgbm(unnamed.model_to_string().encode())[1] is None


def test_classes_are_zero_to_k_unless_named_and_must_fit_the_model():
    rng = np.random.default_rng(6)
    _, trained = _train(rng, "multiclass")
    data = trained.model_to_string().encode()
    assert read_lightgbm(data)[0].classes.tolist() == [0, 1, 2]
    assert read_lightgbm(data, classes=["a", "b", "c"])[0].classes.tolist() == ["a", "b", "c"]
    for wrong in (["a", "b"], ["a", "a", "b"], [True, False, None]):
        with pytest.raises(InvalidArtifact, match="classes"):
            read_lightgbm(data, classes=wrong)
    _, regressor = _train(rng, "regression")
    with pytest.raises(InvalidArtifact, match="regressor"):
        read_lightgbm(regressor.model_to_string().encode(), classes=["a", "b"])


@pytest.mark.parametrize("text", ["1", "0.7", "2.123456789", "0.123456789012345678", "1e-3", "1.5E+2", "3.", ".25"])
def test_the_sigmoid_parameter_is_read_as_lightgbm_reads_it(text):
    """``Common::Atof`` is digit by digit, not always the nearest double: its answer, whatever ``float`` says."""
    rng = np.random.default_rng(7)
    _, trained = _train(rng, "binary", num_leaves=4)
    edited = re.sub(r"^objective=binary sigmoid:\S+$", f"objective=binary sigmoid:{text}", trained.model_to_string(),
                    flags=re.M)
    rows = rng.normal(size=(50, 5)) * 3
    form, _ = read_lightgbm(edited.encode())
    np.testing.assert_array_equal(form.predict_proba(rows)[:, 1], lgb.Booster(model_str=edited).predict(rows))
    assert _atof(text) == pytest.approx(float(text), rel=1e-15)


@functools.cache
def _model_text():
    """A three-class model whose every tree splits on a category first."""
    rng = np.random.default_rng(8)
    X = rng.normal(size=(600, 5))
    X[:, 2] = rng.integers(0, 40, 600)
    y = (X[:, 2] % 3 + (X[:, 1] > 1)) % 3
    params = {"objective": "multiclass", "num_class": 3, "num_leaves": 8, "max_cat_to_onehot": 1,
              "min_data_per_group": 5, "cat_smooth": 1.0, "verbose": -1, "num_threads": 1}
    text = lgb.train(params, lgb.Dataset(X, y, categorical_feature=[2]), 3).model_to_string()
    assert re.search(r"Tree=0\nnum_leaves=\d+\nnum_cat=1\n", text)
    return text


def _first(key, text, change):
    """``text`` with the first ``key=`` line's value changed by ``change`` (of its list of values)."""
    line = re.search(rf"^{key}=(.*)$", text, re.M)
    return text[:line.start(1)] + " ".join(change(line.group(1).split(" "))) + text[line.end(1):]


@pytest.mark.parametrize("damage,message", [
    (lambda t: _first("left_child", t, lambda v: ["99"] + v[1:]), "child"),
    (lambda t: _first("left_child", t, lambda v: ["-99"] + v[1:]), "child"),
    (lambda t: _first("left_child", t, lambda v: ["0"] + v[1:]), "reached twice"),
    (lambda t: _first("right_child", t, lambda v: v[:1] + ["1"] + v[2:] if len(v) > 2 else ["0"]), "reached twice"),
    (lambda t: _first("split_feature", t, lambda v: ["5"] + v[1:]), "column"),
    (lambda t: _first("split_feature", t, lambda v: ["-1"] + v[1:]), "column"),
    (lambda t: _first("threshold", t, lambda v: ["nan"] + v[1:]), "not a number"),
    (lambda t: _first("threshold", t, lambda v: ["0x1p3"] + v[1:]), "not a number"),
    (lambda t: _first("leaf_value", t, lambda v: ["inf"] + v[1:]), "finite"),
    (lambda t: _first("leaf_value", t, lambda v: v[1:]), "holds"),
    (lambda t: _first("decision_type", t, lambda v: ["12"] + v[1:]), "decision_type"),
    (lambda t: _first("decision_type", t, lambda v: ["64"] + v[1:]), "decision_type"),
    (lambda t: _first("num_leaves", t, lambda v: ["1000000000"]), "num_leaves"),
    (lambda t: _first("num_leaves", t, lambda v: ["0"]), "num_leaves"),
    (lambda t: _first("num_leaves", t, lambda v: [str(int(v[0]) + 1)]), "holds"),
    (lambda t: _first("cat_boundaries", t, lambda v: ["0", "99999999"]), "cat_threshold|holds"),
    (lambda t: _first("cat_boundaries", t, lambda v: ["1"] + v[1:]), "cat_boundaries"),
    (lambda t: _first("cat_threshold", t, lambda v: ["4294967296"] + v[1:]), "uint32"),
    (lambda t: t.replace("num_cat=1\n", "num_cat=0\n", 1), "set the tree does not hold"),
    (lambda t: re.sub(r"^is_linear=0$", "is_linear=1", t, count=1, flags=re.M), "linear"),
    (lambda t: _first("max_feature_idx", t, lambda v: ["99999999"]), "max_feature_idx"),
    (lambda t: _first("max_feature_idx", t, lambda v: ["7"]), "feature_names"),
    (lambda t: _first("num_class", t, lambda v: ["99999999"]), "num_class"),
    (lambda t: _first("num_tree_per_iteration", t, lambda v: ["2"]), "num_tree_per_iteration"),
    (lambda t: _first("objective", t, lambda v: ["lambdarank"]), "objective"),
    (lambda t: _first("tree_sizes", t, lambda v: ["1"] + v[1:]), "tree_sizes"),
    (lambda t: _first("tree_sizes", t, lambda v: v + ["100"]), "tree_sizes"),
    (lambda t: t.replace("max_feature_idx=", "average_output\nmax_feature_idx=", 1), "average_output"),
    (lambda t: t.replace("\nend of trees", "\nTree=999\nnum_leaves=1\nnum_cat=0\nleaf_value=1\n\nend of trees"),
     "tree_sizes|iterations"),
    (lambda t: t.replace("pandas_categorical:null", 'pandas_categorical:[["a", "b"]]'), "pandas"),
    (lambda t: t.replace("label_index=0", "label_index=0=1"), "more than one"),
])
def test_damaged_models_are_refused_naming_what_is_wrong(damage, message):
    text = _model_text()
    if "tree_sizes" not in message:  # read tree by tree, so that an edit is not refused for changing a tree's size
        text = re.sub(r"^tree_sizes=.*\n", "", text, flags=re.M)
    damaged = damage(text)
    assert damaged != text
    with pytest.raises(InvalidArtifact, match=message):
        read_lightgbm(damaged.encode())


def test_every_truncation_before_the_end_of_the_trees_is_refused():
    data = _model_text().encode()
    end = data.index(b"end of trees") + len(b"end of trees")
    for cut in range(1, end, max(1, end // 400)):
        with pytest.raises(InvalidArtifact):
            read_lightgbm(data[:cut])


HEADER = (b"tree\nnum_class=1\nmax_feature_idx=0\nfeature_names=a\nfeature_infos=none\n"
          b"objective=regression\n")


@pytest.mark.parametrize("data,message", [
    (b"tree\n\xff\xfe", "UTF-8"),
    (b"tree\n", "no tree"),
    (b"tree\nnum_class=1\nTree=0\n", "max_feature_idx"),
    (HEADER + b"Tree=0\nnum_leaves=20000000\nnum_cat=0\nleaf_value=1\n\nend of trees\n", "holds 1 values"),
    (HEADER + b"Tree=0\nnum_leaves=3\nnum_cat=0\nleaf_value=1 2 3\nleft_child=" + b"0 " * 1_000_000 + b"\n\n"
     b"end of trees\n", "left_child holds 1000001 values, not 2"),
    (HEADER + b"Tree=0\nnum_leaves=1\nnum_cat=0\nleaf_value=1\n\n" * 100_001 + b"end of trees\n", "100000 trees"),
    (HEADER.replace(b"regression", b"binary sigmoid:1e" + b"9" * 5000) + b"Tree=0\n", "sigmoid"),  # a 500 once
    (HEADER.replace(b"regression", b"binary " + b" " * 100_000) + b"Tree=0\n", "objective line"),
    (HEADER.replace(b"feature_names=a", b"feature_names=a" + b" " * 1_000_000) + b"Tree=0\n", "feature_names"),
])
def test_hostile_files_are_refused_without_building_what_they_announce(data, message):
    with pytest.raises(InvalidArtifact, match=message):
        read_lightgbm(data)


def test_a_node_count_past_the_bound_is_refused(monkeypatch):
    from registry.artifacts.loading import lightgbm_files

    monkeypatch.setattr(lightgbm_files, "MAX_NODES", 3)
    with pytest.raises(InvalidArtifact, match="nodes|num_leaves"):
        read_lightgbm(_model_text().encode())


def test_a_count_between_separator_characters_is_read_not_a_500():
    """``str.strip`` takes the separators \\x1c to \\x1f, which ``int()`` refuses: found by mutating files."""
    from registry.artifacts.loading.lightgbm_trees import read_int

    assert read_int("467\x1e", "tree_sizes") == read_int(" 467\x1c ", "tree_sizes") == 467


def test_a_file_with_crlf_line_breaks_reads_as_the_one_with_lf():
    """The reader finds lines in the bytes (never split into lines): a \\r before each \\n is no part of a value."""
    text = re.sub(r"^tree_sizes=.*\n", "", _model_text(), flags=re.M)
    lf, lf_names = read_lightgbm(text.encode())
    crlf, crlf_names = read_lightgbm(text.replace("\n", "\r\n").encode())
    assert crlf_names == lf_names
    for field in ("nodes", "value", "roots", "bitsets", "cover"):
        np.testing.assert_array_equal(getattr(crlf, field), getattr(lf, field))
