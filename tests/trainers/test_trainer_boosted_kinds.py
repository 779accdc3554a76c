"""`train --kind` boosting (scikit-learn's HistGradientBoosting), xgboost and lightgbm, then `register` into a
real registry (gunicorn): each version answers what the trained model answers, a classifier in its labels;
`register`'s flags send the metadata the upload takes; a kind whose library is missing names the package."""
from __future__ import annotations

import json
import sys

import joblib
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from bench.harness import server
from registry_client import RegistryClient
from tests.databases import fresh_database
from trainers import boosted
from trainers.cli import cli

ADMIN_TOKEN = "trainers-admin-token"
DATA = {"classification": "breast_cancer", "regression": "diabetes"}
FILES = {"boosting": ".joblib", "xgboost": ".json", "lightgbm": ".txt"}
FRAMEWORKS = {"boosting": "scikit-learn", "xgboost": "xgboost", "lightgbm": "lightgbm"}
FEW_TREES = {"boosting": "max_iter=10", "xgboost": "n_estimators=10", "lightgbm": "n_estimators=10"}


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    """A real registry on a fresh database of the backend under test."""
    root = tmp_path_factory.mktemp("registry")
    with fresh_database(root) as database_url, server.running(database_url, root, ADMIN_TOKEN, workers=2) as (live,):
        yield live


@pytest.fixture(scope="module")
def examples(tmp_path_factory):
    """The bundled datasets as CSV files, by task."""
    folder = tmp_path_factory.mktemp("examples")
    paths = {task: folder / f"{name}.csv" for task, name in DATA.items()}
    for task, path in paths.items():
        assert CliRunner().invoke(cli, ["export-example", DATA[task], str(path)]).exit_code == 0
    return paths


def _trained(kind, task, examples, tmp_path):
    out = tmp_path / f"{kind}-{task}{FILES[kind]}"
    result = CliRunner().invoke(cli, ["train", "--data", str(examples[task]), "--target", "target", "--kind", kind,
                                      "--task", task, "--param", FEW_TREES[kind], "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out, json.loads(out.with_suffix(".report.json").read_text())


def _local_answers(kind, out, report, rows):
    """What the trained model's file answers on ``rows``, read by its own library in this process."""
    if kind == "boosting":
        return joblib.load(out).predict(pd.DataFrame(rows, columns=report["feature_names"]))
    if kind == "xgboost":
        import xgboost

        matrix = xgboost.DMatrix(np.asarray(rows, dtype=float), feature_names=report["feature_names"])
        scores = xgboost.Booster(model_file=str(out)).predict(matrix)
    else:
        import lightgbm

        scores = lightgbm.Booster(model_file=str(out)).predict(np.asarray(rows, dtype=float))
    if report["task"] == "regression":
        return scores
    return np.asarray(report["classes"])[(scores > 0.5).astype(int)]  # binary: the second class above 0.5


@pytest.mark.parametrize("task", ["classification", "regression"])
@pytest.mark.parametrize("kind", ["boosting", "xgboost", "lightgbm"])
def test_a_trained_boosted_kind_registers_and_answers_what_it_answered_when_trained(registry, examples, tmp_path,
                                                                                   kind, task):
    if kind != "boosting":
        pytest.importorskip(kind)
    out, report = _trained(kind, task, examples, tmp_path)
    name = f"{kind}-{task}"

    result = CliRunner().invoke(cli, ["register", "--registry", registry.url, "--model", name, str(out)],
                                env={"REGISTRY_TOKEN": ADMIN_TOKEN})

    assert result.exit_code == 0, result.output
    client = RegistryClient(registry.url, ADMIN_TOKEN)
    version = client.version(name, int(result.stdout))
    assert (version.kind, version.framework, version.task) == ("boosting", FRAMEWORKS[kind], task)
    assert version.signature.names == report["feature_names"]  # LightGBM's file writes "mean radius" as "mean_radius"
    rows = report["input_example"]
    answer = client.predict(name, rows, ref=version.version)
    expected = _local_answers(kind, out, report, rows)
    if task == "classification":
        assert version.signature.classes == ["benign", "malignant"]
        assert answer.predictions == expected.tolist()
    else:
        assert answer.predictions == pytest.approx(expected.tolist(), rel=1e-6)


def test_register_sends_classes_model_card_and_metrics_from_its_flags(registry, examples, tmp_path):
    pytest.importorskip("xgboost")
    out, report = _trained("xgboost", "classification", examples, tmp_path)

    result = CliRunner().invoke(cli, ["register", "--registry", registry.url, "--model", "flagged",
                                      "--classes", "harmless,harmful", "--metric", "accuracy=0.5", "--metric",
                                      "recall=0.9", "--intended-use", "triage", "--limitations", "adults only",
                                      str(out)], env={"REGISTRY_TOKEN": ADMIN_TOKEN})

    assert result.exit_code == 0, result.output
    client = RegistryClient(registry.url, ADMIN_TOKEN)
    version = client.version("flagged", int(result.stdout))
    assert version.signature.classes == ["harmless", "harmful"]
    assert (version.intended_use, version.limitations) == ("triage", "adults only")
    assert version.metrics["accuracy"] == 0.5 and version.metrics["recall"] == 0.9 and "roc_auc" in version.metrics
    assert client.predict("flagged", report["input_example"][:1], ref=version.version).predictions[0] in (
        "harmless", "harmful")


def test_a_kind_whose_library_is_missing_names_the_package_to_install(examples, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "lightgbm", None)  # import lightgbm now raises ImportError

    result = CliRunner().invoke(cli, ["train", "--data", str(examples["regression"]), "--target", "target",
                                      "--kind", "lightgbm", "--out", str(tmp_path / "m.txt")])

    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1] == ("Error: kind 'lightgbm' needs the lightgbm package, which is "
                                                      "not installed here: pip install lightgbm")


@pytest.mark.parametrize("kind, out, detail", [
    ("xgboost", "m.joblib", "name it *.json or *.ubj"),
    ("lightgbm", "m.json", "name it *.txt"),
])
def test_a_library_kinds_artifact_must_be_named_as_its_file(examples, tmp_path, kind, out, detail):
    result = CliRunner().invoke(cli, ["train", "--data", str(examples["regression"]), "--target", "target",
                                      "--kind", kind, "--out", str(tmp_path / out)])
    assert result.exit_code == 1 and detail in result.output


def test_a_text_column_is_refused_by_the_library_kinds(write_csv, binary_frame, tmp_path):
    result = CliRunner().invoke(cli, ["train", "--data", str(write_csv(binary_frame)), "--target", "label",
                                      "--kind", "xgboost", "--out", str(tmp_path / "m.json")])
    assert result.exit_code == 1 and "'colour' hold text" in result.output and "kind boosting" in result.output


def test_retrain_takes_the_scikit_learn_kinds_only(examples):
    result = CliRunner().invoke(cli, ["retrain", "--data", str(examples["regression"]), "--target", "target",
                                      "--kind", "xgboost", "--registry", "http://127.0.0.1:9", "--model", "m"])
    assert result.exit_code == 2 and "'xgboost' is not one of 'linear', 'logistic', 'tree', 'forest', 'boosting'" \
        in " ".join(result.output.split())
