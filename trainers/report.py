"""The JSON report written next to an artifact, and the upload metadata made from it."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from trainers.boosted import BoostedModel
from trainers.datasets import Dataset
from trainers.errors import UnreadableData
from trainers.lineage import collect
from trainers.pipeline import estimator_path
from trainers.training import TrainedModel

INPUT_EXAMPLE_ROWS = 5


def build_report(trained: TrainedModel, dataset: Dataset, job_url: str | None = None) -> dict:
    """Metrics, params, lineage, feature names and an input example of a trained model."""
    spec = trained.spec
    report = {
        "kind": spec.kind,
        "task": trained.task,
        "estimator": estimator_path(spec.kind, trained.task),
        "target": spec.target,
        "feature_names": [str(name) for name in trained.pipeline.feature_names_in_],
        "metrics": trained.metrics,
        "evaluation": trained.evaluation,
        "params": trained.params,
        "lineage": collect(dataset, spec.target, trained.params, job_url),
        "input_example": input_example(trained.test_features),
    }
    if trained.metrics_sd is not None:
        report["metrics_sd"] = trained.metrics_sd
    if isinstance(trained.pipeline, BoostedModel) and trained.task == "classification":
        # The library's file holds only the classes' numbers: the upload names them.
        report["classes"] = [_json_value(label) for label in trained.pipeline.classes_]
    return report


def input_example(features: pd.DataFrame, rows: int = INPUT_EXAMPLE_ROWS) -> list[list]:
    """A few complete rows in column order as JSON values (the registry refuses null and NaN)."""
    complete = features.dropna().head(rows)
    return [[_json_value(value) for value in row] for row in complete.itertuples(index=False)]


def upload_metadata(report: dict, description: str | None = None, tags: dict | None = None) -> dict:
    """The ``metadata`` field of an upload: description, metrics, params, tags, lineage, example, and an
    XGBoost or LightGBM classifier's classes."""
    metrics = dict(report.get("metrics", {}))
    for name, sd in report.get("metrics_sd", {}).items():
        metrics[f"{name}_sd"] = sd
    metadata = {
        "description": description or _default_description(report),
        "metrics": metrics,
        "params": report.get("params", {}),
        "tags": tags or {},
        "lineage": report.get("lineage", {}),
        "input_example": report.get("input_example") or None,
        "classes": report.get("classes"),
    }
    return {key: value for key, value in metadata.items() if value is not None}


def write_report(report: dict, path: str | Path) -> None:
    """Write the report as indented JSON."""
    Path(path).write_text(json.dumps(report, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def read_report(path: str | Path) -> dict:
    """Read a report written by :func:`write_report`."""
    try:
        report = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UnreadableData(f"cannot read the report {path}: {exc}") from exc
    if not isinstance(report, dict):
        raise UnreadableData(f"the report {path} is not a JSON object")
    return report


def report_path_for(artifact: str | Path) -> Path:
    """Where an artifact's report lives by default: ``model.joblib`` → ``model.report.json``."""
    return Path(artifact).with_suffix(".report.json")


def _default_description(report: dict) -> str | None:
    if "kind" not in report:
        return None
    source = report.get("lineage", {}).get("dataset", "data")
    return f"{report['kind']} {report['task']} model of {report['target']!r} trained on {source}"


def _json_value(value):
    # numpy scalars become the matching Python number; strings and bools pass through.
    return value.item() if hasattr(value, "item") else value
