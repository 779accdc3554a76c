"""skops files load like joblib files: same allow-list, same bounds, same checks on trees."""
import io
import zipfile

import numpy as np
import pytest
import sklearn.base
import skops.io
from sklearn.linear_model import LinearRegression
from sklearn.preprocessing import FunctionTransformer
from sklearn.svm import SVR
from sklearn.tree import DecisionTreeRegressor

from bench.bomb_files import MIB, skops_zip_bomb
from registry.artifacts.loading.allowed import skops_trusted
from registry.artifacts.safe_pickle import load_estimator
from registry.errors import ArtifactTooLarge, InvalidArtifact, UnsafeArtifact
from tests.unit.test_safe_pickle import assert_same_predictions, child_past_the_end


def test_every_supported_model_loads_from_skops_and_predicts_like_the_original(model_case):
    if model_case.kind == "boosting":
        with pytest.raises(InvalidArtifact, match="boosted models are accepted as joblib or pickle files"):
            load_estimator(skops.io.dumps(model_case.model))
        return
    loaded = load_estimator(skops.io.dumps(model_case.model))

    assert loaded.format == "skops"
    assert type(loaded.estimator) is type(model_case.model)
    assert loaded.sklearn_version is not None
    assert_same_predictions(loaded.estimator, model_case.model, model_case.X)


def test_the_trusted_types_are_the_allow_list_and_never_everything():
    trusted = skops_trusted()

    assert "sklearn.ensemble._forest.RandomForestRegressor" in trusted
    assert "sklearn.svm._classes.SVR" not in trusted
    assert "builtins.eval" not in trusted


def test_a_scikit_learn_class_outside_the_allow_list_is_refused(numeric_data):
    X, y, _ = numeric_data

    with pytest.raises(UnsafeArtifact, match=r"refers to sklearn\.svm\._classes\.SVR, which is not an allowed"):
        load_estimator(skops.io.dumps(SVR().fit(X, y)))


def test_a_function_inside_a_skops_file_is_refused(numeric_data):
    X, y, _ = numeric_data
    model = LinearRegression().fit(X, y)
    model.hook = np.sum  # a function node

    with pytest.raises(UnsafeArtifact):
        load_estimator(skops.io.dumps(model))


def test_a_function_transformer_with_a_type_as_function_is_refused(numeric_data):
    X, _, _ = numeric_data

    with pytest.raises(UnsafeArtifact, match="FunctionTransformer with a function"):
        load_estimator(skops.io.dumps(FunctionTransformer(func=np.float64).fit(X)))


def test_a_skops_tree_whose_nodes_point_outside_it_is_refused(numeric_data):
    X, y, _ = numeric_data
    model = DecisionTreeRegressor(max_depth=3).fit(X, y)
    state = model.tree_.__getstate__()
    child_past_the_end(state)
    model.tree_.__setstate__(state)

    with pytest.raises(UnsafeArtifact, match="decision tree"):
        load_estimator(skops.io.dumps(model))


def test_a_skops_file_from_another_scikit_learn_version_is_refused(numeric_data, monkeypatch):
    X, y, _ = numeric_data
    monkeypatch.setattr(sklearn.base, "__version__", "1.0.2")  # what __getstate__ records
    data = skops.io.dumps(LinearRegression().fit(X, y))
    monkeypatch.undo()

    with pytest.raises(InvalidArtifact, match="artifact was made with scikit-learn 1.0.2"):
        load_estimator(data)


def test_a_skops_zip_bomb_is_refused_from_its_announced_sizes(numeric_data):
    X, y, _ = numeric_data
    data = skops_zip_bomb(skops.io.dumps(LinearRegression().fit(X, y)), 3000 * MIB)

    with pytest.raises(ArtifactTooLarge, match="MAX_MODEL_MB"):
        load_estimator(data, max_bytes=64 * MIB)


def test_a_skops_entry_that_lies_about_its_size_is_never_inflated_past_it(numeric_data):
    X, y, _ = numeric_data
    data = skops_zip_bomb(skops.io.dumps(LinearRegression().fit(X, y)), 512 * MIB)
    # The central directory now says 1 KB for an entry that inflates to 512 MB.
    end = data.rindex(b"bomb.npy") - 46
    lying = data[: end + 24] + (1024).to_bytes(4, "little") + data[end + 28 :]

    with pytest.raises(InvalidArtifact):
        load_estimator(lying, max_bytes=64 * MIB)


def test_a_skops_file_with_too_many_schema_values_is_refused_before_parsing():
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("schema.json", "[" + "[]," * 2_000_000 + "[]]")

    with pytest.raises(ArtifactTooLarge, match="objects"):
        load_estimator(out.getvalue())


def test_a_zip_without_a_schema_is_not_a_skops_file():
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("model.bin", b"x")

    with pytest.raises(InvalidArtifact, match="without schema.json"):
        load_estimator(out.getvalue())


def test_a_deeply_nested_skops_schema_is_refused_as_not_a_model():
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("schema.json", "[" * 200_000 + "]" * 200_000)

    with pytest.raises(InvalidArtifact, match="artifact is not a skops file"):
        load_estimator(out.getvalue())


def _with_arrays_rewritten(data: bytes, rewrite) -> bytes:
    """The skops file ``data`` with each .npy entry replaced by ``rewrite(array)``'s bytes."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as copy:
        for name in source.namelist():
            entry = source.read(name)
            if name.endswith(".npy"):
                entry = rewrite(np.load(io.BytesIO(entry)))
            copy.writestr(name, entry)
    return out.getvalue()


def _npy(array: np.ndarray, version: tuple[int, int]) -> bytes:
    out = io.BytesIO()
    np.lib.format.write_array(out, array, version=version)
    return out.getvalue()


def test_a_skops_file_whose_arrays_have_npy_version_2_headers_loads(numeric_data):
    X, y, _ = numeric_data
    model = DecisionTreeRegressor(max_depth=3).fit(X, y)

    loaded = load_estimator(_with_arrays_rewritten(skops.io.dumps(model), lambda array: _npy(array, (2, 0))))

    assert_same_predictions(loaded.estimator, model, X)


def test_a_skops_array_in_another_npy_version_is_refused(numeric_data):
    X, y, _ = numeric_data
    data = _with_arrays_rewritten(skops.io.dumps(DecisionTreeRegressor(max_depth=3).fit(X, y)),
                                  lambda array: _npy(array, (3, 0)))

    with pytest.raises(InvalidArtifact, match=r"in an \.npy version other than 1\.0 and 2\.0"):
        load_estimator(data)


def test_a_skops_array_shorter_than_its_header_says_is_refused(numeric_data):
    X, y, _ = numeric_data
    data = _with_arrays_rewritten(skops.io.dumps(DecisionTreeRegressor(max_depth=3).fit(X, y)),
                                  lambda array: _npy(array, (1, 0))[:-8])

    with pytest.raises(InvalidArtifact, match="whose header does not match its data"):
        load_estimator(data)


def test_a_skops_node_read_by_a_loader_no_model_needs_is_refused(numeric_data):
    """skops's MethodNode and FunctionNode call what they name: an allowed type read through one is refused."""
    X, y, _ = numeric_data
    source = zipfile.ZipFile(io.BytesIO(skops.io.dumps(LinearRegression().fit(X, y))))
    schema = source.read("schema.json").replace(b'"__loader__": "NdArrayNode"', b'"__loader__": "MethodNode"', 1)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as copy:
        for name in source.namelist():
            copy.writestr(name, schema if name == "schema.json" else source.read(name))

    with pytest.raises(UnsafeArtifact, match="holds a MethodNode for numpy.ndarray, which a model file never needs"):
        load_estimator(out.getvalue())
