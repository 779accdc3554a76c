"""Reading an MLflow model folder's ``MLmodel`` file: the scikit-learn flavor, the signature, the input example."""
from __future__ import annotations

import json
from dataclasses import dataclass

import yaml

from trainers.mlflow_import.records import Unimportable

FORMATS = ("skops", "cloudpickle", "pickle")
MAX_EXAMPLE_ROWS = 10


class _NoAliasLoader(yaml.SafeLoader):
    """A safe YAML loader that refuses anchors and aliases: an ``MLmodel`` file never needs them, and a few
    hundred bytes of nested aliases expand to gigabytes once walked."""

    def compose_node(self, parent, index):
        """Refuse an alias or an anchor before any node is built from it."""
        if self.check_event(yaml.AliasEvent):
            raise Unimportable("its MLmodel file uses YAML aliases, which this registry does not read")
        event = self.peek_event()
        if getattr(event, "anchor", None):
            raise Unimportable("its MLmodel file uses YAML anchors and aliases, which this registry does not read")
        return super().compose_node(parent, index)


def _inside_folder(path) -> str | None:
    """A relative path that stays in the model folder, or None."""
    if not isinstance(path, str) or not path or path.startswith(("/", "\\")) or ".." in path.replace("\\", "/").split("/"):
        return None
    return path


@dataclass(frozen=True)
class SklearnModel:
    """Where the estimator's file is in the model folder, and how MLflow wrote it."""

    file: str
    serialization_format: str
    sklearn_version: str | None
    feature_names: list[str] | None
    example_file: str | None


def read_mlmodel(text: bytes) -> SklearnModel:
    """The scikit-learn model an ``MLmodel`` file describes; Unimportable when it is not one this registry reads."""
    try:
        mlmodel = yaml.load(text, Loader=_NoAliasLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise Unimportable(f"its MLmodel file is not YAML: {str(exc).splitlines()[0]}") from None
    flavors = (mlmodel or {}).get("flavors") if isinstance(mlmodel, dict) else None
    if not isinstance(flavors, dict):
        raise Unimportable("its MLmodel file names no flavors")
    sklearn = flavors.get("sklearn")
    if not isinstance(sklearn, dict):
        named = ", ".join(sorted(flavors)) or "none"
        raise Unimportable(f"it is not a scikit-learn model (its flavors: {named})")
    if sklearn.get("code"):
        raise Unimportable("it was logged with code files, which this registry never runs")
    serialization = sklearn.get("serialization_format") or "cloudpickle"
    if serialization not in FORMATS:
        raise Unimportable(f"its serialization format {serialization!r} is not one of {', '.join(FORMATS)}")
    file = sklearn.get("pickled_model")
    if _inside_folder(file) is None:
        raise Unimportable("its MLmodel file names no model file in the model folder")
    example = mlmodel.get("saved_input_example_info") or {}
    return SklearnModel(
        file=file,
        serialization_format=serialization,
        sklearn_version=sklearn.get("sklearn_version"),
        feature_names=_column_names(mlmodel.get("signature")),
        example_file=_inside_folder(example.get("artifact_path")) if isinstance(example, dict) else None,
    )


def _column_names(signature) -> list[str] | None:
    """The input column names of a column-based signature; None for a tensor signature or none at all."""
    if not isinstance(signature, dict) or not signature.get("inputs"):
        return None
    try:
        inputs = json.loads(signature["inputs"])
    except (TypeError, ValueError):
        return None
    names = [spec.get("name") for spec in inputs if isinstance(spec, dict)]
    if not names or any(spec.get("type") == "tensor" for spec in inputs) or not all(isinstance(n, str) and n for n in names):
        return None
    return names


def example_rows(content: bytes, feature_names: list[str] | None) -> list | None:
    """The rows of a saved input example in signature order (at most ``MAX_EXAMPLE_ROWS``); None when unreadable."""
    try:
        example = json.loads(content)
    except ValueError:
        return None
    if isinstance(example, dict) and isinstance(example.get("columns"), list) and isinstance(example.get("data"), list):
        rows = example["data"]
        if feature_names and sorted(example["columns"]) == sorted(feature_names):
            order = [example["columns"].index(name) for name in feature_names]
            rows = [[row[i] for i in order] for row in rows]
    elif isinstance(example, dict) and isinstance(example.get("inputs"), list):
        rows = example["inputs"]
    elif isinstance(example, list):
        rows = example
    else:
        return None
    rows = [row if isinstance(row, list) else [row] for row in rows[:MAX_EXAMPLE_ROWS]]
    return rows or None
