"""Uploaded files load only when they hold a supported model, and never run code on the way."""
import builtins
import io
import multiprocessing
import os
import pickle
import shlex
import subprocess
import sys
import time
import tracemalloc
import warnings
import zlib

import joblib
import numpy as np
import pytest
import sklearn
import sklearn.base
from joblib.numpy_pickle import NumpyArrayWrapper
from numpy._core.multiarray import _reconstruct
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
from sklearn.linear_model import LinearRegression
from sklearn.preprocessing import FunctionTransformer
from sklearn.tree import DecisionTreeRegressor
from sklearn.tree._tree import Tree

from config import BASE_DIR
from registry.artifacts.safe_pickle import load_estimator
from registry.errors import InvalidArtifact, UnsafeArtifact
from tests.helpers import artifact_bytes

FORMATS = ["pickle-4", "pickle-5", "joblib", "joblib-zlib"]
COMPRESSORS = ["joblib-zlib", "joblib-gzip", "joblib-bz2", "joblib-lzma", "joblib-xz"]

FORK = multiprocessing.get_context("fork")


def assert_same_predictions(loaded, original, X):
    np.testing.assert_array_equal(loaded.predict(X), original.predict(X))
    if hasattr(original, "predict_proba"):
        np.testing.assert_array_equal(loaded.predict_proba(X), original.predict_proba(X))


@pytest.mark.parametrize("how", FORMATS)
def test_a_supported_model_loads_and_predicts_like_the_original(model_case, dump, how):
    loaded = load_estimator(dump(model_case.model, how))

    assert type(loaded.estimator) is type(model_case.model)
    assert_same_predictions(loaded.estimator, model_case.model, model_case.X)


@pytest.mark.parametrize("how", COMPRESSORS)
def test_every_joblib_compression_loads(frame_data, new_model, dump, how):
    frame, y, _ = frame_data
    model = new_model(DecisionTreeRegressor, pipeline=True).fit(frame, y)

    assert_same_predictions(load_estimator(dump(model, how)).estimator, model, frame)


def test_the_scikit_learn_version_of_the_file_is_recorded(numeric_data, dump):
    X, y, _ = numeric_data

    loaded = load_estimator(dump(LinearRegression().fit(X, y), "joblib"))

    assert loaded.sklearn_version == sklearn.__version__


def test_a_pickle_with_numpy_1_module_names_loads(numeric_data):
    X, y, _ = numeric_data
    model = DecisionTreeRegressor(max_depth=2).fit(X, y)
    data = pickle.dumps(model, protocol=3).replace(b"cnumpy._core.", b"cnumpy.core.")
    assert b"numpy.core.multiarray" in data

    assert_same_predictions(load_estimator(data).estimator, model, X)


class RunsShell:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {shlex.quote(str(self.marker))}",)


class RunsEval(RunsShell):
    def __reduce__(self):
        return builtins.eval, (f"open({str(self.marker)!r}, 'w').close()",)


class RunsPopen(RunsShell):
    def __reduce__(self):
        return subprocess.Popen, (["touch", str(self.marker)],)


def in_a_list_next_to_a_model(marker):
    return [LinearRegression().fit([[0.0], [1.0]], [0.0, 1.0]), RunsShell(marker)]


def in_an_object_array_of_a_model(marker):
    model = LinearRegression().fit([[0.0], [1.0]], [0.0, 1.0])
    model.feature_names_in_ = np.array(["x", RunsShell(marker)], dtype=object)
    return model


PAYLOADS = {
    "os.system": RunsShell,
    "builtins.eval": RunsEval,
    "subprocess.Popen": RunsPopen,
    "nested-in-list": in_a_list_next_to_a_model,
    "in-object-array": in_an_object_array_of_a_model,
}


@pytest.mark.parametrize("payload", PAYLOADS.values(), ids=PAYLOADS.keys())
@pytest.mark.parametrize("how", ["pickle-4", "joblib", "joblib-zlib"])
def test_a_file_that_would_run_code_is_refused_and_runs_nothing(tmp_path, dump, payload, how):
    marker = tmp_path / "pwned"
    data = dump(payload(marker), how)

    with pytest.raises(UnsafeArtifact) as refused:
        load_estimator(data)

    assert "not an allowed scikit-learn or NumPy type" in refused.value.detail
    assert not marker.exists()


@pytest.mark.parametrize("payload", PAYLOADS.values(), ids=PAYLOADS.keys())
def test_the_refused_payloads_do_run_code_when_unpickled_unsafely(tmp_path, dump, payload):
    marker = tmp_path / "pwned"

    loaded = joblib.load(io.BytesIO(dump(payload(marker), "joblib")))

    if isinstance(loaded, subprocess.Popen):
        loaded.wait()
    deadline = time.monotonic() + 5
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert marker.exists()


def test_the_refusal_names_the_global_and_points_at_the_allow_list_briefly(tmp_path, dump):
    with pytest.raises(UnsafeArtifact) as refused:
        load_estimator(dump(RunsEval(tmp_path / "pwned"), "joblib"))

    detail = refused.value.detail
    assert detail.startswith("artifact refers to builtins.eval, which is not an allowed")
    assert "docs/artifacts.md" in detail
    assert "RandomForestRegressor" not in detail
    assert len(detail) < 200


def test_a_function_transformer_with_a_function_is_refused(numeric_data, dump):
    X, _, _ = numeric_data
    # np.float64 is allow-listed, so only the FunctionTransformer rule stops this one.
    transformer = FunctionTransformer(func=np.float64).fit(X)

    with pytest.raises(UnsafeArtifact, match="FunctionTransformer"):
        load_estimator(dump(transformer, "joblib"))


class CallsAConstructor:
    def __reduce__(self):
        return FunctionTransformer, (np.float64,)


def test_a_file_that_calls_an_estimator_constructor_is_refused(dump):
    with pytest.raises(UnsafeArtifact, match=r"calls FunctionTransformer\(\.\.\.\)"):
        load_estimator(dump(CallsAConstructor(), "pickle-4"))


def test_a_file_that_sets_attributes_on_a_class_is_refused():
    # GLOBAL NumpyArrayWrapper, then BUILD with slot state {"read": None}.
    data = b"\x80\x04cjoblib.numpy_pickle\nNumpyArrayWrapper\nN}X\x04\x00\x00\x00readNs\x86b."
    read = NumpyArrayWrapper.read

    with pytest.raises(UnsafeArtifact, match="tries to change NumpyArrayWrapper"):
        load_estimator(data)

    assert NumpyArrayWrapper.read is read


def forged_tree_file(model, edit) -> bytes:
    """``model`` pickled with each of its trees' state passed through ``edit``."""

    class TreeForger(pickle.Pickler):
        def reducer_override(self, obj):
            if not isinstance(obj, Tree):
                return NotImplemented
            cls, args, state = obj.__reduce__()
            state = dict(state, nodes=state["nodes"].copy())
            edit(state)
            return cls, args, state

    buffer = io.BytesIO()
    TreeForger(buffer, protocol=4).dump(model)
    return buffer.getvalue()


def child_past_the_end(state):
    state["nodes"]["left_child"][0] = state["node_count"] + 1000


def child_loops_back(state):
    state["nodes"]["right_child"][0] = 0


def feature_out_of_range(state):
    state["nodes"]["feature"][0] = 50


def no_nodes_counted(state):
    # predict still starts at node 0, so the nodes it walks would go unchecked.
    state["node_count"] = 0


@pytest.mark.parametrize(
    "edit", [child_past_the_end, child_loops_back, feature_out_of_range, no_nodes_counted]
)
@pytest.mark.parametrize("model_class", [DecisionTreeRegressor, RandomForestClassifier])
def test_a_tree_whose_nodes_point_outside_it_is_refused(numeric_data, new_model, edit, model_class):
    X, y, y_class = numeric_data
    model = new_model(model_class).fit(X, y_class if model_class is RandomForestClassifier else y)

    with pytest.raises(UnsafeArtifact, match="decision tree"):
        load_estimator(forged_tree_file(model, edit))


def test_an_unchanged_forged_tree_file_loads(numeric_data):
    X, y, _ = numeric_data
    model = DecisionTreeRegressor(max_depth=3).fit(X, y)

    loaded = load_estimator(forged_tree_file(model, lambda state: None))

    assert_same_predictions(loaded.estimator, model, X)


def test_an_empty_file_is_refused():
    with pytest.raises(InvalidArtifact, match="artifact is empty"):
        load_estimator(b"")


def test_a_file_of_joblib_before_0_10_is_refused_saying_to_dump_it_again():
    with pytest.raises(InvalidArtifact, match="artifact was written by joblib older than 0.10: dump it again"):
        load_estimator(b"ZF0x00000000000000" + zlib.compress(b"\x80\x02N."))


def test_a_file_compressed_with_lz4_is_refused_with_the_compressions_the_server_reads(numeric_data):
    X, y, _ = numeric_data
    plain = io.BytesIO()
    joblib.dump(LinearRegression().fit(X, y), plain)
    lz4_frame = b"\x04\x22\x4d\x18" + plain.getvalue()  # the lz4 frame's magic number, as joblib writes it first

    with pytest.raises(InvalidArtifact, match=r"compressed with lz4, which this server does not read: dump it with "
                                              r"joblib.dump\(model, path, compress=3\)"):
        load_estimator(lz4_frame)


@pytest.mark.parametrize("data", [b"not a model at all", b"\x80\x04garbage", bytes(range(256)) * 4])
def test_a_file_that_is_not_a_pickle_is_refused(data):
    with pytest.raises(InvalidArtifact, match="artifact is not a joblib or pickle file"):
        load_estimator(data)


@pytest.mark.parametrize("how", ["pickle-4", "joblib", "joblib-zlib", "joblib-lzma"])
def test_a_truncated_file_is_refused(frame_data, new_model, dump, how):
    frame, _, y_class = frame_data
    data = dump(new_model(RandomForestClassifier, pipeline=True).fit(frame, y_class), how)

    with pytest.raises(InvalidArtifact, match="artifact is not a joblib or pickle file"):
        load_estimator(data[: len(data) // 2])


@pytest.mark.parametrize(
    ("value", "name"),
    [({"model": "m"}, "dict"), ([1, 2], "list"), (42, "int"), ((1.0,), "tuple")],
)
def test_a_file_that_holds_no_estimator_is_refused(dump, value, name):
    with pytest.raises(InvalidArtifact, match=f"artifact holds a {name}, not a scikit-learn"):
        load_estimator(dump(value, "joblib"))


def test_a_model_wrapped_in_a_dict_is_refused(numeric_data, dump):
    X, y, _ = numeric_data

    with pytest.raises(InvalidArtifact, match="holds a dict"):
        load_estimator(dump({"model": LinearRegression().fit(X, y)}, "joblib"))


@pytest.mark.parametrize("how", ["pickle-4", "joblib"])
def test_a_model_from_another_scikit_learn_version_is_refused_without_a_warning(
    numeric_data, dump, monkeypatch, how
):
    X, y, _ = numeric_data
    monkeypatch.setattr(sklearn.base, "__version__", "1.0.2")  # what __getstate__ records
    data = dump(LinearRegression().fit(X, y), how)
    monkeypatch.undo()

    with warnings.catch_warnings(record=True) as caught, pytest.raises(InvalidArtifact) as refused:
        warnings.simplefilter("always")
        load_estimator(data)

    running = sklearn.__version__
    assert refused.value.detail == (
        f"artifact was made with scikit-learn 1.0.2; "
        f"this server runs {running}: retrain with {running}"
    )
    assert caught == []


def test_a_model_that_does_not_say_its_scikit_learn_version_is_refused(numeric_data):
    X, y, _ = numeric_data
    model = LinearRegression().fit(X, y)

    class DropsVersion(pickle.Pickler):
        def reducer_override(self, obj):
            if obj is not model:
                return NotImplemented
            rebuild, args, state, *_ = obj.__reduce_ex__(4)
            state.pop("_sklearn_version")
            return rebuild, args, state

    buffer = io.BytesIO()
    DropsVersion(buffer, protocol=4).dump(model)

    with pytest.raises(InvalidArtifact, match="made with scikit-learn an unknown version"):
        load_estimator(buffer.getvalue())


def test_a_forest_is_read_holding_one_pickled_tree_at_a_time_not_all_of_them():
    """Each tree copies its pickled nodes into buffers of its own; the pickle's memo used to keep every
    pickled copy to the end of the file, so a load peaked at twice the forest (585 MB for a 299 MB
    upload in bench/fleet.py, 306 MB since). NumPy reports its arrays to tracemalloc; the trees' own
    buffers are not, so the traced peak is what the pickled copies alone held at once."""
    rng = np.random.default_rng(0)
    forest = RandomForestRegressor(n_estimators=20, random_state=0).fit(rng.random((500, 3)), rng.random(500))
    one_tree = max(t.tree_.node_count * 64 + t.tree_.value.nbytes for t in forest.estimators_)
    data = artifact_bytes(forest)
    load_estimator(data)  # once before measuring: the modules a first load imports are not the trees' copies
    probe = rng.random((5, 3))

    peak, answers = _in_a_child_of_one_thread(lambda: _traced_load(data, probe))

    # A few trees' worth at once (the bytes read, the array made of them, the tree they become), not
    # all twenty: 3.6 trees' worth here, 22 before the pickled copies were let go.
    assert peak < 6 * one_tree
    assert answers == forest.predict(probe).tolist()


def _traced_load(data: bytes, probe) -> tuple[int, list]:
    tracemalloc.start()
    try:
        loaded = load_estimator(data).estimator
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak, loaded.predict(probe).tolist()


def _in_a_child_of_one_thread(work):
    """``work()``'s result, computed in a forked child: tracemalloc counts every thread's allocations, and
    the suite leaves threads of its own running (a Dask client's, Spark's, apps' loops); a child of a fork
    runs this one alone."""
    reader, writer = FORK.Pipe(duplex=False)
    child = FORK.Process(target=lambda: writer.send(work()))
    child.start()
    found = reader.recv() if reader.poll(60) else None
    child.join(timeout=30)
    assert child.exitcode == 0 and found is not None
    return found


@pytest.mark.parametrize("fmt", ["joblib", "pickle", "skops"])
def test_an_estimator_without_one_of_its_parameters_is_refused_not_a_500(numeric_data, fmt):
    """Found by the pickle fuzzer (tests/fuzz): a LogisticRegression whose state lacks ``solver`` loaded, then
    describing it (``check_is_fitted`` reads scikit-learn's tags, which read ``solver``) raised AttributeError: a
    500 on upload."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, _, classes = numeric_data
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, classes)
    del model.steps[-1][1].solver
    if fmt == "joblib":
        data = artifact_bytes(model)
    elif fmt == "pickle":
        data = pickle.dumps(model, protocol=5)
    else:
        import skops.io

        data = skops.io.dumps(model)
    with pytest.raises(InvalidArtifact, match="without one of its parameters .*'solver'"):
        load_estimator(data)


@pytest.mark.parametrize("attribute, strategy", [("strategy", "bogus"), ("strategy", "uniform"), ("strategy", ["prior"]),
                                                  ("_strategy", "bogus"), ("_strategy", ["prior"])])
def test_a_gradient_boosting_model_whose_init_estimator_fit_never_makes_is_refused_not_a_500(numeric_data, attribute,
                                                                                            strategy):
    """Found by the pickle fuzzer (tests/fuzz): a GradientBoostingClassifier whose ``init_`` (the DummyClassifier fit
    makes) had an unknown ``strategy`` loaded, and compiling it raised scikit-learn's UnboundLocalError from
    ``DummyClassifier.predict_proba``: a 500 on upload; so did one whose ``strategy`` was the prior's but whose
    ``_strategy`` (what fit copies from it, and what ``predict_proba`` reads) was not. A fit with ``init=None``
    makes the prior's, nothing else."""
    from sklearn.ensemble import GradientBoostingClassifier

    X, _, classes = numeric_data
    model = GradientBoostingClassifier(n_estimators=3, random_state=0).fit(X, classes)
    setattr(model.init_, attribute, strategy)
    with pytest.raises(InvalidArtifact, match="init_ is not the one it was fitted with"):
        load_estimator(artifact_bytes(model))


@pytest.mark.parametrize("compress", [("zlib", 3), ("gzip", 3)])
def test_a_compressed_file_with_bytes_after_its_stream_is_refused_without_joblibs_endless_read(numeric_data, compress):
    """Found by the pickle fuzzer (tests/fuzz): joblib's zlib and gzip reader loops for ever on bytes after the
    stream's end, its memory doubling at each turn (a 1.7 KB file took 23 GB before the kernel killed it). Run in a
    process of its own with 2 GB of address space and a minute, so that a regression fails here, not the machine."""
    X, y, _ = numeric_data
    buffer = io.BytesIO()
    joblib.dump(LinearRegression().fit(X, y), buffer, compress=compress)
    script = ("import sys\nfrom registry.artifacts.safe_pickle import load_estimator\nfrom registry.errors import InvalidArtifact\n"
              "try:\n    load_estimator(sys.stdin.buffer.read())\nexcept InvalidArtifact as refused:\n    print(refused)\n")
    ran = subprocess.run([sys.executable, "-c", script], input=buffer.getvalue() + b"\x00trailing", capture_output=True,
                         timeout=60, preexec_fn=_two_gigabytes, cwd=BASE_DIR)
    assert ran.returncode == 0, ran.stderr.decode()[-2000:]
    assert f"bytes after the end of its {compress[0]} stream" in ran.stdout.decode()


def _two_gigabytes() -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))


class _ShortObjectArray:
    """Pickles as an object array of shape (18, 1) whose state lists one object: NumPy's own ``__setstate__`` takes it
    and crashed the process with SIGSEGV (found by the pickle fuzzer)."""

    def __reduce__(self):
        return _reconstruct, (np.ndarray, (0,), b"b"), (1, (18, 1), np.dtype("O"), False, [1.5])


def test_an_object_array_whose_list_does_not_fill_its_shape_is_refused_not_a_crash():
    script = ("import sys\nfrom registry.artifacts.safe_pickle import load_estimator\nfrom registry.errors import InvalidArtifact\n"
              "try:\n    load_estimator(sys.stdin.buffer.read())\nexcept InvalidArtifact as refused:\n    print(refused)\n")
    ran = subprocess.run([sys.executable, "-c", script], input=pickle.dumps(_ShortObjectArray(), protocol=5),
                         capture_output=True, timeout=60, cwd=BASE_DIR)
    assert ran.returncode == 0, ran.stderr.decode()[-2000:]  # -11 before: the process died
    assert "array of objects whose list does not fill its shape" in ran.stdout.decode()


class _FieldNamedNotTyped:
    """Pickles as a structured dtype whose second field's type is a field's name, not a dtype: NumPy's own
    ``__setstate__`` takes it, and filling an array of it crashed the process (found by the pickle fuzzer)."""

    def __reduce__(self):
        fields = {"a": (np.dtype("int64"), 0), "b": ("a", 8)}
        return np.dtype, ("V16", False, True), (3, "|", None, ("a", "b"), fields, 16, 1, 16)


@pytest.mark.parametrize("dump", ["joblib", "pickle"])
def test_a_dtype_in_a_state_numpy_never_writes_is_refused_before_any_array_uses_it(dump):
    value = {"dtype": _FieldNamedNotTyped()}
    data = pickle.dumps(value, protocol=5) if dump == "pickle" else artifact_bytes(value)
    with pytest.raises(InvalidArtifact, match="a NumPy dtype whose state .* is not one NumPy writes"):
        load_estimator(data)


def test_an_estimator_state_naming_an_attribute_by_bytes_is_refused_not_a_500():
    """Found by the pickle fuzzer (tests/fuzz): ``check_is_fitted`` called ``str.endswith`` on every attribute's
    name and raised TypeError on a bytes name: a 500 on upload."""
    model = LinearRegression()
    model.__dict__[b"coef_"] = 1.0
    with pytest.raises(InvalidArtifact, match="state to something other than its attributes by name"):
        load_estimator(pickle.dumps(model, protocol=5))
