"""XGBoost files read without XGBoost: bit for bit ``xgboost.Booster.predict`` (the oracle), and hostile files refused."""
import json
import struct
import zlib

import numpy as np
import pytest

from registry.artifacts.loading import ubjson
from registry.artifacts.loading.xgboost_files import read_xgboost
from registry.errors import InvalidArtifact

xgb = pytest.importorskip("xgboost")
OBJECTIVES = [("binary:logistic", 2), ("multi:softprob", 3), ("multi:softmax", 4), ("reg:squarederror", 0)]


def _train(rng, objective, n_classes, **extra):
    X = rng.normal(size=(300, 5)).astype(np.float32)
    X[rng.random(X.shape) < 0.15] = np.nan
    y = rng.integers(0, max(n_classes, 2), 300) if n_classes else rng.normal(size=300)
    params = {"objective": objective, "max_depth": int(rng.integers(1, 7)), "eta": float(rng.uniform(0.05, 0.5)),
              "nthread": 1, **extra}  # one thread: OpenMP's spinning threads crawl on a busy machine
    if n_classes > 2:
        params["num_class"] = n_classes
    return X, xgb.train(params, xgb.DMatrix(X, label=y), int(rng.integers(1, 30)))


def _awkward_rows(rng, booster, X):
    """Training rows, fresh ones, NaN, every split condition itself and its float32 neighbours, subnormals."""
    conditions = np.concatenate([np.asarray(t["split_conditions"], dtype=np.float32) for t in
                                 json.loads(booster.save_raw("json"))["learner"]["gradient_booster"]["model"]["trees"]])
    ties = np.concatenate([conditions, np.nextafter(conditions, np.float32(np.inf)),
                           np.nextafter(conditions, np.float32(-np.inf))])
    fresh = rng.choice(np.concatenate([ties, [np.nan, 0.0, -0.0, 1e-45, -1e-45, 1e-310]]), size=(200, X.shape[1]))
    return np.concatenate([X, fresh, rng.normal(size=(50, X.shape[1]))]).astype(np.float64)


def _library(booster, objective, rows):
    return booster.predict(xgb.DMatrix(rows)), booster.predict(xgb.DMatrix(rows), output_margin=True)


def _ours(form, objective, rows):
    if objective == "binary:logistic":
        answer = form.predict_proba(rows)[:, 1]
    elif objective == "multi:softprob":
        answer = form.predict_proba(rows)
    else:
        answer = form.predict(rows)
    return answer.astype(np.float32), form._raw(rows).astype(np.float32)


@pytest.mark.parametrize("objective,n_classes", OBJECTIVES)
@pytest.mark.parametrize("raw_format", ["json", "ubj"])
def test_random_models_answer_xgboost_bit_for_bit(objective, n_classes, raw_format):
    rng = np.random.default_rng(zlib.crc32(f"{objective} {raw_format}".encode()))
    for _ in range(40):
        X, booster = _train(rng, objective, n_classes)
        form, _ = read_xgboost(bytes(booster.save_raw(raw_format)))
        rows = _awkward_rows(rng, booster, X)
        expected, margin = _library(booster, objective, rows)
        answer, raw = _ours(form, objective, rows)
        assert np.array_equal(raw, margin.reshape(len(rows), -1))
        assert np.array_equal(answer, expected)


def test_base_score_early_stopping_and_feature_names_follow_the_file():
    rng = np.random.default_rng(7)
    X = rng.normal(size=(400, 4)).astype(np.float32)
    y = (X[:, 0] + rng.normal(size=400) > 0).astype(int)
    train = xgb.DMatrix(X[:300], label=y[:300], feature_names=list("abcd"))
    booster = xgb.train({"objective": "binary:logistic", "base_score": 0.3, "eta": 0.9, "nthread": 1}, train, 200,
                        evals=[(xgb.DMatrix(X[300:], label=y[300:], feature_names=list("abcd")), "v")],
                        early_stopping_rounds=3, verbose_eval=False)
    assert booster.best_iteration < booster.num_boosted_rounds() - 1
    loaded = xgb.Booster(model_file=None)
    loaded.load_model(bytearray(booster.save_raw("json")))
    form, names = read_xgboost(bytes(booster.save_raw("json")))
    assert names == list("abcd")
    rows = X[300:].astype(np.float64)
    # A loaded Booster's predict uses every tree, best_iteration or not.
    assert np.array_equal(form.predict_proba(rows)[:, 1].astype(np.float32),
                          loaded.predict(xgb.DMatrix(rows, feature_names=list("abcd"))))


def test_infinite_values_are_refused_as_xgboost_refuses_them():
    _, booster = _train(np.random.default_rng(3), "binary:logistic", 2)
    form, _ = read_xgboost(bytes(booster.save_raw("json")))
    for value in (np.inf, -np.inf, 1e300):
        with pytest.raises(ValueError, match="inf"):
            form.predict(np.full((1, 5), value))


def test_named_classes_come_from_the_caller():
    _, booster = _train(np.random.default_rng(4), "multi:softprob", 3)
    form, _ = read_xgboost(bytes(booster.save_raw("json")), classes=["a", "b", "c"])
    assert set(form.predict(np.zeros((3, 5)))) <= {"a", "b", "c"}
    with pytest.raises(InvalidArtifact, match="classes"):
        read_xgboost(bytes(booster.save_raw("json")), classes=["a", "b"])


def _model_json():
    _, booster = _train(np.random.default_rng(5), "binary:logistic", 2)
    return json.loads(booster.save_raw("json"))


def _first_tree(document):
    return document["learner"]["gradient_booster"]["model"]["trees"][0]


@pytest.mark.parametrize("damage,message", [
    (lambda d: _first_tree(d)["left_children"].__setitem__(0, 10_000), "child"),
    (lambda d: _first_tree(d)["left_children"].__setitem__(0, 0), "child"),
    (lambda d: _first_tree(d)["split_indices"].__setitem__(0, 99), "column"),
    (lambda d: _first_tree(d)["split_conditions"].__setitem__(0, "NaN"), "split_conditions|NaN"),
    (lambda d: _first_tree(d)["right_children"].pop(), "lengths"),
    (lambda d: d["learner"]["objective"].__setitem__("name", "rank:pairwise"), "objective"),
    (lambda d: d["learner"]["learner_model_param"].__setitem__("base_score", "[oops]"), "base_score"),
    (lambda d: d["learner"]["gradient_booster"]["model"].__setitem__("tree_info", [5] * 100), "tree_info"),
    (lambda d: d["learner"].pop("gradient_booster"), "missing"),
])
def test_damaged_json_models_are_refused_naming_what_is_wrong(damage, message):
    document = _model_json()
    damage(document)
    with pytest.raises(InvalidArtifact, match=message):
        read_xgboost(json.dumps(document).encode())


def test_a_nan_threshold_is_refused():
    document = _model_json()
    tree = _first_tree(document)
    assert tree["left_children"][0] != -1, "the test model's first tree must split at its root"
    text = json.dumps(document).replace(json.dumps(tree["split_conditions"][0]), "NaN", 1)
    with pytest.raises(InvalidArtifact):
        read_xgboost(text.encode())


@pytest.mark.parametrize("data,message", [
    (b"[" * 100_000 + b"]" * 100_000, "not valid JSON|learner|an array of arrays"),
    (b"{\"learner\": " + b"[" * 100_000, "not valid JSON"),
    (b"{L\x00\x00\x00\x00\x00\x00\x00\x07learner" + b"[" * 1000, "nested"),
    (b"{L\x00\x00\x00\x00\x00\x00\x00\x07learner[$d#L\x7f\xff\xff\xff\xff\xff\xff\xff", "announces"),
    (b"{L\x7f\xff\xff\xff\xff\xff\xff\xff", "truncated"),
    (b"{L\x00\x00\x00\x00\x00\x00\x00\x07learnerX}", "unknown marker"),
])
def test_hostile_files_are_refused_without_building_what_they_announce(data, message):
    with pytest.raises(InvalidArtifact, match=message):
        read_xgboost(data)


def test_every_truncation_of_a_ubjson_model_is_refused():
    _, booster = _train(np.random.default_rng(6), "multi:softprob", 3)
    data = bytes(booster.save_raw("ubj"))
    assert isinstance(ubjson.loads(data), dict)
    for end in range(1, len(data), max(1, len(data) // 300)):
        with pytest.raises(InvalidArtifact):
            read_xgboost(data[:end])


def test_a_node_count_past_the_bound_is_refused(monkeypatch):
    from registry.artifacts.loading import xgboost_files

    monkeypatch.setattr(xgboost_files, "MAX_NODES", 1)
    with pytest.raises(InvalidArtifact, match="more than 1 nodes"):
        read_xgboost(json.dumps(_model_json()).encode())


def _stumps(n_trees):
    """A JSON model of ``n_trees`` stumps: a trained model's trees repeated, each with its own id."""
    rng = np.random.default_rng(11)
    X = rng.normal(size=(300, 4)).astype(np.float32)
    booster = xgb.train({"objective": "binary:logistic", "max_depth": 1, "eta": 0.01, "nthread": 1},
                        xgb.DMatrix(X, label=(X[:, 0] + X[:, 1] > 0).astype(int)), 7)
    document = json.loads(booster.save_raw("json"))
    model = document["learner"]["gradient_booster"]["model"]
    model["trees"] = [{**model["trees"][i % 7], "id": i} for i in range(n_trees)]
    model["tree_info"], model["iteration_indptr"] = [0] * n_trees, list(range(n_trees + 1))
    model["gbtree_model_param"]["num_trees"] = str(n_trees)
    return json.dumps(document, separators=(",", ":")).encode(), rng.normal(size=(50, 4))


def test_a_hundred_thousand_stumps_answer_as_xgboost_does():
    """Once quadratic in the trees (14 minutes for these): read in one pass over the file and one a level."""
    data, rows = _stumps(100_000)
    form, _ = read_xgboost(data)
    assert len(form.roots) == 100_000
    loaded = xgb.Booster(model_file=bytearray(data))
    assert np.array_equal(form.predict_proba(rows)[:, 1].astype(np.float32), loaded.predict(xgb.DMatrix(rows)))


def test_more_trees_than_the_bound_are_refused_naming_it(monkeypatch):
    from registry.artifacts.loading import xgboost_files

    monkeypatch.setattr(xgboost_files, "MAX_TREES", 10)
    with pytest.raises(InvalidArtifact, match="more than 10 trees"):
        read_xgboost(_stumps(11)[0])


def test_a_pretty_printed_file_and_strings_holding_brackets_read_as_the_compact_one():
    """Strings are read whole (a bracket, a quote or a backslash in them cuts nothing), whitespace anywhere."""
    _, booster = _train(np.random.default_rng(12), "multi:softprob", 3)
    document = json.loads(booster.save_raw("json"))
    names = ['a[0]', 'b"[1,2]"', 'c\\[', '{d}']
    document["learner"]["feature_names"] = names + ["e"]
    document["learner"]["attributes"] = {"note": 'say "[1, 2]" \\" ['}
    compact, _ = read_xgboost(booster.save_raw("json"))
    for text in (json.dumps(document), json.dumps(document, indent=2)):
        form, read_names = read_xgboost(text.encode())
        assert read_names == names + ["e"]
        rows = np.random.default_rng(13).normal(size=(40, 5))
        assert np.array_equal(form.predict_proba(rows), compact.predict_proba(rows))


def _with_leaf(data: bytes, raw_format: str, value: float) -> bytes:
    """``data`` (a stump model) with its first tree's first leaf value ``value``."""
    if raw_format == "json":
        document = json.loads(data)
        _first_tree(document)["split_conditions"][1] = "LEAF"
        return json.dumps(document).replace('"LEAF"', "1e999" if value > 0 else "-1e999").encode()
    data = bytearray(data)
    at = data.index(b"split_conditions[$d#L") + len(b"split_conditions[$d#L") + 8
    data[at + 4:at + 8] = np.array([value], dtype=">f4").tobytes()
    return bytes(data)


@pytest.mark.parametrize("raw_format,value", [("json", np.inf), ("json", -np.inf), ("ubj", np.nan),
                                              ("ubj", np.inf), ("ubj", -np.inf)])
def test_leaf_values_that_are_not_finite_are_refused(raw_format, value):
    """Once accepted (LightGBM's were refused): a NaN leaf makes every answer of its tree NaN."""
    rng = np.random.default_rng(14)
    X = rng.normal(size=(200, 3)).astype(np.float32)
    booster = xgb.train({"objective": "binary:logistic", "max_depth": 1, "nthread": 1},
                        xgb.DMatrix(X, label=(X[:, 0] > 0).astype(int)), 3)
    data = bytes(booster.save_raw(raw_format))
    assert json.loads(booster.save_raw("json"))["learner"]["gradient_booster"]["model"]["trees"][0][
        "left_children"][1] == -1, "the first tree's node 1 must be a leaf"
    read_xgboost(data)
    with pytest.raises(InvalidArtifact, match="leaf value is not a finite number"):
        read_xgboost(_with_leaf(data, raw_format, value))


@pytest.mark.parametrize("data,message", [
    # two million nulls: once a Python step each, now refused after a model's worth of values
    (b"{L\x00\x00\x00\x00\x00\x00\x00\x07learner[" + b"Z" * 2_000_000 + b"]}", "far more values"),
    (b"{L\x00\x00\x00\x00\x00\x00\x00\x07learner[" + b"TF" * 1_000_000 + b"]}", "far more values"),
    (b'{"learner": NaN}', "NaN"),
    (b'{"learner": {"x": [1, 2]}, "y": NaN}', "NaN"),
    (b'{"learner": Infinity}', "Infinity"),
    (b'{"learner": "' + b'\\"[1]' * 200_000, "not valid JSON"),  # a string that never ends
    (b'{"learner": {"a": [1, 2], "b": "[3]"}}', "missing"),
], ids=["nulls", "booleans", "nan", "nan-after-an-array", "infinity", "endless-string", "no-model"])
def test_more_hostile_files_are_refused(data, message):
    with pytest.raises(InvalidArtifact, match=message):
        read_xgboost(data)


@pytest.mark.parametrize("field,values,message", [
    ("left_children", "[1, true, -1]", "integer"),
    ("left_children", "[1.5, 2, -1]", "integer"),
    ("split_conditions", "[1, NaN, 2]", "number"),
    ("split_conditions", "[1, 2]", "lengths"),
    ("split_indices", "[99999999999999999999, 0, 0]", "integer|column"),
])
def test_a_tree_array_that_is_not_its_numbers_is_refused(field, values, message):
    document = json.loads(_stumps(2)[0])
    _first_tree(document)[field] = "ARRAY"
    with pytest.raises(InvalidArtifact, match=message):
        read_xgboost(json.dumps(document).replace('"ARRAY"', values).encode())


@pytest.mark.parametrize("data,expected", [
    (b"[ZZZTFi\x01i\x02I\x00\x03U\x05d\x3f\x80\x00\x00d\xbf\x80\x00\x00D" + struct.pack(">d", 0.1) + b"]",
     [None, None, None, True, False, 1, 2, 3, 5, 1.0, -1.0, 0.1]),
    (b"{i\x01a[#i\x02i\x01i\x02i\x01bZ}", {"a": [1, 2], "b": None}),  # a count ends a run before a key's length
    (b"{i\x01a[#i\x02ZTi\x01bZ}", {"a": [None, True], "b": None}),
    (b"[" + (b"L" + struct.pack(">q", -2)) * 2 + b"l\x00\x00\x00\x07]", [-2, -2, 7]),
])
def test_runs_of_values_read_as_each_value_alone(data, expected):
    assert ubjson.loads(data) == expected


def test_a_run_of_values_is_read_at_once_not_a_python_step_a_value(monkeypatch):
    """A 57 MB file of nulls took 2.9 s of CPU before its 422, a step of Python a null (issue 67, item 11)."""
    steps = []
    read_value = ubjson._Reader.value
    monkeypatch.setattr(ubjson._Reader, "value", lambda self, *args: steps.append(1) or read_value(self, *args))
    assert ubjson.loads(b"[" + b"Z" * 50_000 + b"TF" * 20_000 + b"d\x3f\x80\x00\x00" * 5_000 + b"]") \
        == [None] * 50_000 + [True, False] * 20_000 + [1.0] * 5_000
    assert len(steps) < 10
    with pytest.raises(InvalidArtifact, match="far more values"):
        ubjson.loads(b"[" + b"I\x10\x00" * 2_000_000 + b"]")
    assert len(steps) < 20


def test_the_fields_of_a_models_trees_are_read_without_steps_of_python_each(monkeypatch):
    """A UBJSON file of 100,000 stumps took 8.8 s of CPU per 100 MB, a dozen steps of Python a field of every tree
    (issue 67, item 11): a tree's key and array head that match the bytes of the tree before are read as they were."""
    data, rows = _stumps(2_000)
    loaded = xgb.Booster(model_file=bytearray(data))
    keys = []
    read_key = ubjson._Reader.key
    monkeypatch.setattr(ubjson._Reader, "key", lambda self, *args: keys.append(1) or read_key(self, *args))
    form, _ = read_xgboost(bytes(loaded.save_raw("ubj")))
    assert np.array_equal(form.predict_proba(rows)[:, 1].astype(np.float32), loaded.predict(xgb.DMatrix(rows)))
    assert len(keys) < 200, f"{len(keys)} keys read a step of Python each for 2,000 trees of 19"
