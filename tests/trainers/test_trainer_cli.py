"""The command line: what train writes, and one clear line for every bad input."""
from __future__ import annotations

import hashlib
import json
import socket
import subprocess
import sys
from pathlib import Path

import joblib
import numpy as np
import pytest
from click.testing import CliRunner

from trainers import __version__
from trainers.cli import cli


@pytest.fixture
def runner(monkeypatch):
    """A CliRunner with no registry token in the environment."""
    monkeypatch.delenv("REGISTRY_TOKEN", raising=False)
    return CliRunner()


def one_error_line(result) -> str:
    """The single line a failed command printed on stderr."""
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("Error:"), result.stderr
    return lines[-1]


def test_train_writes_an_artifact_that_predicts_raw_rows_and_a_report_beside_it(
    runner, tmp_path, write_csv, regression_frame, monkeypatch
):
    monkeypatch.chdir(tmp_path)  # outside any git work tree
    data = write_csv(regression_frame)
    out = tmp_path / "models" / "price.joblib"
    result = runner.invoke(cli, ["train", "--data", str(data), "--target", "price", "--kind", "forest",
                                 "--param", "n_estimators=10", "--out", str(out)])
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("r2=")
    pipeline = joblib.load(out)
    assert pipeline.predict(regression_frame.drop(columns="price").head(3)).shape == (3,)
    report = json.loads((tmp_path / "models" / "price.report.json").read_text())
    assert report["kind"] == "forest" and report["task"] == "regression"
    assert report["estimator"] == "sklearn.ensemble.RandomForestRegressor"
    assert report["feature_names"] == ["size", "age", "colour"]
    assert set(report["metrics"]) == {"r2", "rmse", "mae"}
    assert report["params"] == {"n_estimators": 10, "random_state": 0}
    assert all(len(row) == 3 and None not in row for row in report["input_example"])
    lineage = report["lineage"]
    assert lineage["dataset_sha256"] == hashlib.sha256(data.read_bytes()).hexdigest()
    assert (lineage["rows"], lineage["columns"], lineage["target"]) == (80, 4, "price")
    assert lineage["trainer_version"] == __version__ and "sklearn_version" in lineage
    assert "git_commit" not in lineage


@pytest.mark.parametrize("target,task,estimator", [
    ("price", "regression", "sklearn.ensemble.HistGradientBoostingRegressor"),
    ("label", "classification", "sklearn.ensemble.HistGradientBoostingClassifier"),
])
def test_train_a_boosting_kind_fits_hist_gradient_boosting_that_the_registry_loads_and_compiles(
    runner, tmp_path, write_csv, regression_frame, monkeypatch, target, task, estimator
):
    from registry.artifacts.introspect import describe
    from registry.artifacts.safe_pickle import load_estimator
    from registry.inference.predictors import TreePredictor, predictor_for

    monkeypatch.chdir(tmp_path)
    frame = regression_frame.assign(label=np.where(regression_frame["size"] > regression_frame["size"].median(), "big",
                                                   "small"))
    frame = frame.drop(columns="label" if target == "price" else "price")
    out = tmp_path / "model.joblib"
    result = runner.invoke(cli, ["train", "--data", str(write_csv(frame)), "--target", target, "--kind", "boosting",
                                 "--param", "max_iter=20", "--out", str(out)])
    assert result.exit_code == 0, result.stderr
    report = json.loads((tmp_path / "model.report.json").read_text())
    assert (report["kind"], report["task"], report["estimator"]) == ("boosting", task, estimator)
    loaded = load_estimator(out.read_bytes()).estimator
    assert describe(loaded).kind == "boosting"
    assert isinstance(predictor_for(loaded), TreePredictor)


def test_train_records_the_git_commit_when_run_inside_a_work_tree(
    runner, tmp_path, write_csv, regression_frame, monkeypatch
):
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.org"]
    subprocess.run([*git, "init", "-q", str(tmp_path)], check=True)
    subprocess.run([*git, "-C", str(tmp_path), "commit", "-q", "--allow-empty", "-m", "x"], check=True)
    commit = subprocess.run(["git", "-C", str(tmp_path), "rev-parse", "HEAD"], capture_output=True,
                            text=True, check=True).stdout.strip()
    monkeypatch.chdir(tmp_path)
    data = write_csv(regression_frame)
    result = runner.invoke(cli, ["train", "--data", str(data), "--target", "price", "--kind", "linear",
                                 "--out", "m.joblib", "--report", "r.json"])
    assert result.exit_code == 0, result.stderr
    assert json.loads((tmp_path / "r.json").read_text())["lineage"]["git_commit"] == commit


def test_train_with_cv_prints_mean_and_sd(runner, tmp_path, write_csv, binary_frame):
    data = write_csv(binary_frame)
    result = runner.invoke(cli, ["train", "--data", str(data), "--target", "label", "--kind", "logistic",
                                 "--cv", "3", "--out", str(tmp_path / "m.joblib")])
    assert result.exit_code == 0, result.stderr
    assert "accuracy=" in result.stdout and "±" in result.stdout
    assert "\r" not in result.stderr  # no progress bar when stderr is not a terminal
    report = json.loads((tmp_path / "m.report.json").read_text())
    assert report["evaluation"]["method"] == "cv" and "accuracy" in report["metrics_sd"]


def test_quiet_keeps_stderr_empty_on_success(runner, tmp_path, write_csv, binary_frame):
    data = write_csv(binary_frame)
    result = runner.invoke(cli, ["--quiet", "train", "--data", str(data), "--target", "label",
                                 "--kind", "tree", "--out", str(tmp_path / "m.joblib")])
    assert result.exit_code == 0
    assert result.stderr == "" and result.stdout.startswith("accuracy=")


def test_export_example_writes_a_bundled_dataset_with_class_names(runner, tmp_path):
    path = tmp_path / "iris.csv"
    result = runner.invoke(cli, ["export-example", "iris", str(path), "--rows", "60"])
    assert result.exit_code == 0, result.stderr
    lines = path.read_text().splitlines()
    assert len(lines) == 61 and lines[0].endswith(",target") and lines[1].endswith(",setosa")


BAD_CSVS = {
    "empty": ("", "is empty"),
    "header_only": ("a,b,y\n", "has a header but no rows"),
    "ragged": ("a,b,y\n1,2,3\n4,5,6,7,8\n", "does not parse as CSV"),
}


@pytest.mark.parametrize("case", BAD_CSVS)
def test_a_csv_that_is_empty_or_does_not_parse_fails_with_one_line(runner, tmp_path, write_csv, case):
    content, message = BAD_CSVS[case]
    result = runner.invoke(cli, ["train", "--data", str(write_csv(content)), "--target", "y",
                                 "--kind", "tree", "--out", str(tmp_path / "m.joblib")])
    assert result.exit_code == 1
    assert message in one_error_line(result)
    assert not (tmp_path / "m.joblib").exists()


def test_a_binary_file_is_not_taken_for_a_csv(runner, tmp_path):
    data = tmp_path / "data.csv"
    data.write_bytes(b"\xff\xfe\x00\x81" * 50)
    result = runner.invoke(cli, ["train", "--data", str(data), "--target", "y", "--kind", "tree",
                                 "--out", str(tmp_path / "m.joblib")])
    assert result.exit_code == 1
    assert "does not parse as CSV" in one_error_line(result)


@pytest.mark.parametrize(
    ("args", "exit_code", "message"),
    [
        (["--target", "missing", "--kind", "forest"], 1, "target column 'missing' is not in data.csv"),
        (["--target", "label", "--kind", "linear"], 1, "'label' must be numeric for regression"),
        (["--target", "label", "--kind", "tree", "--task", "regression"], 1, "must be numeric"),
        (["--target", "label", "--kind", "svm"], 2, "'svm' is not one of"),
        (["--target", "label", "--kind", "tree", "--param", "max_depth"], 2, "not of the form name=value"),
        (["--target", "label", "--kind", "tree", "--param", "depth=3"], 1, "has no parameter 'depth'"),
        (["--target", "label", "--kind", "tree", "--param", "max_depth=-2"], 1, "could not be fitted"),
        (["--target", "label", "--kind", "tree", "--test-size", "1.5"], 2, "--test-size"),
    ],
)
def test_bad_arguments_fail_with_one_clear_line(
    runner, tmp_path, write_csv, binary_frame, args, exit_code, message
):
    data = write_csv(binary_frame)
    result = runner.invoke(cli, ["train", "--data", str(data), *args, "--out", str(tmp_path / "m.joblib")])
    assert result.exit_code == exit_code, result.stderr
    assert message in result.stderr
    assert not (tmp_path / "m.joblib").exists()


def test_a_target_with_one_class_is_refused(runner, tmp_path, write_csv, binary_frame):
    data = write_csv(binary_frame.assign(label="yes"))
    result = runner.invoke(cli, ["train", "--data", str(data), "--target", "label", "--kind", "logistic",
                                 "--out", str(tmp_path / "m.joblib")])
    assert result.exit_code == 1
    assert "has a single class ('yes')" in one_error_line(result)


def test_too_few_rows_for_the_split_are_refused(runner, tmp_path, write_csv, regression_frame):
    data = write_csv(regression_frame.head(4))
    result = runner.invoke(cli, ["train", "--data", str(data), "--target", "price", "--kind", "linear",
                                 "--out", str(tmp_path / "m.joblib")])
    assert result.exit_code == 1
    assert "4 rows are too few to hold out 20%" in one_error_line(result)


def test_a_missing_data_file_is_a_usage_error(runner, tmp_path):
    result = runner.invoke(cli, ["train", "--data", str(tmp_path / "nope.csv"), "--target", "y",
                                 "--kind", "tree", "--out", str(tmp_path / "m.joblib")])
    assert result.exit_code == 2
    assert "does not exist" in result.stderr


def test_registry_commands_need_the_token_in_the_environment(runner, tmp_path):
    artifact = tmp_path / "m.joblib"
    artifact.write_bytes(b"x")
    result = runner.invoke(
        cli, ["register", "--registry", "http://127.0.0.1:9", "--model", "m", str(artifact)]
    )
    assert result.exit_code == 2
    assert "set REGISTRY_TOKEN" in result.stderr


def test_a_registry_url_must_be_http(runner, tmp_path):
    artifact = tmp_path / "m.joblib"
    artifact.write_bytes(b"x")
    result = runner.invoke(cli, ["register", "--registry", "127.0.0.1:8000", "--model", "m", str(artifact)],
                           env={"REGISTRY_TOKEN": "t"})
    assert result.exit_code == 2
    assert "not an http:// or https:// URL" in result.stderr


def test_the_trainers_never_import_flask():
    code = "import sys, trainers.cli, trainers.retrain; print('flask' in sys.modules)"
    repo = Path(__file__).resolve().parents[2]
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=repo, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"


def test_an_unreachable_registry_fails_with_one_line(runner, tmp_path):
    artifact = tmp_path / "m.joblib"
    artifact.write_bytes(b"x")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    result = runner.invoke(cli, ["register", "--registry", url, "--model", "m", str(artifact)],
                           env={"REGISTRY_TOKEN": "t"})
    assert result.exit_code == 1
    assert one_error_line(result) == (
        f"Error: cannot reach the registry at {url}: connection refused (is the server running?)"
    )


def test_a_rejected_token_fails_register_with_one_line(runner, tmp_path, stub):
    stub.answer_json(401, {"title": "Unauthorized", "status": 401, "detail": "unknown token"}, problem=True)
    artifact = tmp_path / "m.joblib"
    artifact.write_bytes(b"x")
    result = runner.invoke(cli, ["register", "--registry", stub.url, "--model", "m", str(artifact)],
                           env={"REGISTRY_TOKEN": "wrong"})
    assert result.exit_code == 1
    assert one_error_line(result) == "Error: token rejected by the registry (401): unknown token"
    assert stub.requests[0]["headers"]["Authorization"] == "Bearer wrong"


def test_register_uploads_the_report_as_metadata_and_prints_the_version(
    runner, tmp_path, write_csv, regression_frame, stub
):
    data = write_csv(regression_frame)
    out = tmp_path / "m.joblib"
    runner.invoke(cli, ["train", "--data", str(data), "--target", "price", "--kind", "linear",
                        "--out", str(out)])
    stub.answer_json(201, {"version": 7})
    result = runner.invoke(cli, ["register", "--registry", stub.url, "--model", "prices",
                                 "--tag", "team=pricing", str(out)], env={"REGISTRY_TOKEN": "t"})
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "7\n"
    body = stub.requests[0]["body"].decode("latin-1")
    metadata = json.loads(body.split('name="metadata"\r\n\r\n')[1].split("\r\n--")[0])
    assert set(metadata) == {"description", "metrics", "params", "tags", "lineage", "input_example"}
    assert metadata["tags"] == {"team": "pricing"} and "r2" in metadata["metrics"]
    assert metadata["lineage"]["dataset_sha256"] == hashlib.sha256(data.read_bytes()).hexdigest()


def test_retrain_with_a_rejected_token_registers_nothing(runner, write_csv, regression_frame, stub):
    stub.answer_json(404, {"title": "Not found", "detail": "no model 'm'"}, problem=True)
    stub.answer_json(401, {"title": "Unauthorized", "detail": "unknown token"}, problem=True)
    result = runner.invoke(cli, ["retrain", "--registry", stub.url, "--model", "m", "--data",
                                 str(write_csv(regression_frame)), "--target", "price", "--kind", "linear"],
                           env={"REGISTRY_TOKEN": "wrong"})
    assert result.exit_code == 1
    assert one_error_line(result) == "Error: token rejected by the registry (401): unknown token"
    assert [request["method"] for request in stub.requests] == ["GET", "POST"]
