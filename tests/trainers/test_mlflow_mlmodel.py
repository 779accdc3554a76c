"""Reading MLflow's MLmodel files and input examples, and naming MLflow models here.

The import as a whole runs against a real MLflow in tests/e2e/test_mlflow_import.py.
"""
import json

import pytest

from trainers.mlflow_import.importer import registry_name
from trainers.mlflow_import.mlmodel import example_rows, read_mlmodel
from trainers.mlflow_import.records import Unimportable

SKLEARN_MLMODEL = """
flavors:
  python_function: {loader_module: mlflow.sklearn, model_path: model.skops}
  sklearn: {code: null, pickled_model: model.skops, serialization_format: skops, sklearn_version: 1.9.1}
saved_input_example_info: {artifact_path: input_example.json, type: dataframe, pandas_orient: split}
signature:
  inputs: '[{"type": "double", "name": "a", "required": true}, {"type": "long", "name": "b", "required": true}]'
"""


def test_a_scikit_learn_mlmodel_names_its_file_format_columns_and_example():
    model = read_mlmodel(SKLEARN_MLMODEL.encode())
    assert (model.file, model.serialization_format, model.sklearn_version) == ("model.skops", "skops", "1.9.1")
    assert model.feature_names == ["a", "b"] and model.example_file == "input_example.json"


def test_a_tensor_signature_names_no_columns_and_an_old_mlmodel_defaults_to_cloudpickle():
    text = """
flavors:
  sklearn: {pickled_model: model.pkl, sklearn_version: 0.24.2}
signature:
  inputs: '[{"type": "tensor", "tensor-spec": {"dtype": "float64", "shape": [-1, 4]}}]'
"""
    model = read_mlmodel(text.encode())
    assert (model.serialization_format, model.feature_names, model.example_file) == ("cloudpickle", None, None)


@pytest.mark.parametrize(("text", "reason"), [
    ("flavors:\n  python_function: {loader_module: mlflow.pytorch}\n  pytorch: {}\n",
     "not a scikit-learn model (its flavors: python_function, pytorch)"),
    ("flavors:\n  sklearn: {pickled_model: model.pkl, code: code}\n", "logged with code files"),
    ("flavors:\n  sklearn: {pickled_model: model.pkl, serialization_format: marshal}\n", "serialization format 'marshal'"),
    ("flavors:\n  sklearn: {pickled_model: ../../etc/passwd}\n", "names no model file"),
    ("flavors: [", "not YAML"),
    ("just text", "names no flavors"),
])
def test_what_is_not_a_readable_scikit_learn_model_is_unimportable_with_the_reason(text, reason):
    with pytest.raises(Unimportable, match=reason.replace("(", r"\(").replace(")", r"\)")):
        read_mlmodel(text.encode())


def test_a_split_example_is_put_in_signature_order():
    content = json.dumps({"columns": ["b", "a"], "data": [[2, 1.5], [4, 3.5]]}).encode()
    assert example_rows(content, ["a", "b"]) == [[1.5, 2], [3.5, 4]]


@pytest.mark.parametrize(("example", "rows"), [
    ({"inputs": [[1.0, 2.0]]}, [[1.0, 2.0]]),
    ([[1.0, 2.0], [3.0, 4.0]], [[1.0, 2.0], [3.0, 4.0]]),
    ([1.0, 2.0], [[1.0], [2.0]]),
    ({"something": "else"}, None),
    ([], None),
])
def test_numpy_examples_are_rows_and_anything_else_is_none(example, rows):
    assert example_rows(json.dumps(example).encode(), None) == rows


def test_an_example_is_cut_to_ten_rows():
    assert len(example_rows(json.dumps([[float(i)] for i in range(50)]).encode(), None)) == 10


@pytest.mark.parametrize(("mlflow_name", "name"), [
    ("housing", "housing"), ("Churn model (EU)", "Churn-model-EU"), ("Prix ünïcode/été", "Prix-unicode-ete"),
    ("_private", "private"),
])
def test_mlflow_names_become_names_this_registry_allows(mlflow_name, name):
    assert registry_name(mlflow_name) == name


def test_a_name_without_a_letter_or_digit_is_unimportable():
    with pytest.raises(Unimportable, match="no letter or digit"):
        registry_name("!!!")


def test_an_mlmodel_with_yaml_aliases_is_refused_before_it_expands():
    """A 700-byte alias bomb (each level nine aliases of the one before) is refused, never built."""
    from trainers.mlflow_import.mlmodel import read_mlmodel
    from trainers.mlflow_import.records import Unimportable
    lines = ['a0: &a0 ["x","x","x","x","x","x","x","x","x"]']
    for level in range(1, 9):
        lines.append(f"a{level}: &a{level} [" + ",".join([f"*a{level - 1}"] * 9) + "]")
    lines.append("flavors: {sklearn: {pickled_model: model.pkl, bomb: *a8}}")
    bomb = "\n".join(lines).encode()
    with pytest.raises(Unimportable, match="alias"):
        read_mlmodel(bomb)


@pytest.mark.parametrize("path", ["/etc/passwd", "../../secret.json", "a/../../b.json"])
def test_an_input_example_path_outside_the_model_folder_is_ignored(path):
    """saved_input_example_info.artifact_path names a file in the model folder or nothing."""
    from trainers.mlflow_import.mlmodel import read_mlmodel
    text = f"flavors: {{sklearn: {{pickled_model: model.pkl}}}}\nsaved_input_example_info: {{artifact_path: '{path}'}}\n"
    assert read_mlmodel(text.encode()).example_file is None
