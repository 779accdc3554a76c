"""``flask models load DIR --name NAME`` (issue 70, the KServe runtime): the one file of a directory becomes a
version and the alias serves it; again on the same file changes nothing; a directory that does not say which
file, a file that is not a model (nothing registered), and an alias the policy guards (the alias stays) are refused
with one line."""
import json
import pickle

import numpy as np
import pytest
import xgboost

from tests.helpers import regression_data


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def model_dir(tmp_path):
    """A KServe model directory: XGBoost's model.json as the storage initializer leaves it, and a hidden file."""
    X, y = regression_data()
    booster = xgboost.train({"objective": "reg:squarederror", "max_depth": 3}, xgboost.DMatrix(X, y), 8)
    folder = tmp_path / "mnt-models"
    folder.mkdir()
    booster.save_model(folder / "model.json")
    (folder / ".initialized").write_text("")
    return folder, booster, X


def test_the_directory_s_file_becomes_the_version_the_alias_serves(runner, client, model_dir):
    folder, booster, X = model_dir

    result = runner.invoke(args=["models", "load", str(folder), "--name", "iris"])

    assert result.exit_code == 0, result.output
    loaded = json.loads(result.stdout)
    assert (loaded["version"], loaded["alias"], loaded["created"], loaded["moved"]) == (1, "production", True, True)
    answer = client.post("/models/iris/production/predict", json={"instances": X[:5].tolist()})
    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json()["predictions"] == pytest.approx(booster.predict(xgboost.DMatrix(X[:5])).tolist(), rel=1e-6)
    entry = client.get("/models/iris/history").get_json()["items"][0]
    assert (entry["actor"], entry["to_version"]) == ("models-load", 1)


def test_loading_the_same_file_again_changes_nothing(runner, client, model_dir):
    folder, _, _ = model_dir
    runner.invoke(args=["models", "load", str(folder), "--name", "iris"])

    again = runner.invoke(args=["models", "load", str(folder), "--name", "iris"])

    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["created"] is False and json.loads(again.stdout)["moved"] is False
    assert client.get("/models/iris/versions").get_json()["total"] == 1
    assert len(client.get("/models/iris/history").get_json()["items"]) == 1


def test_a_directory_of_two_files_is_refused_naming_them(runner, client, model_dir):
    folder, _, _ = model_dir
    (folder / "model.bst").write_bytes(b"another")

    result = runner.invoke(args=["models", "load", str(folder), "--name", "iris"])

    assert result.exit_code == 1
    assert "exactly one model file" in result.output and "model.bst, model.json" in result.output
    assert client.get("/models/iris").status_code == 404


def test_a_file_that_would_run_code_is_refused_and_nothing_is_registered(runner, client, tmp_path):
    hostile = tmp_path / "model.joblib"
    hostile.write_bytes(pickle.dumps(np.array))  # any callable outside the allow-list: data, never code

    result = runner.invoke(args=["models", "load", str(hostile), "--name", "iris"])

    assert result.exit_code == 1 and "Traceback" not in result.output
    assert client.get("/models/iris").status_code == 404


def test_an_alias_whose_policy_wants_approvals_is_not_moved(runner, client, admin, model_dir):
    folder, _, _ = model_dir
    runner.invoke(args=["models", "load", str(folder), "--name", "iris"])
    protected = client.put("/models/iris/aliases/production/policy", json={"approvals": 1, "reason": "release rules"},
                           headers=admin)
    assert protected.status_code == 200, protected.get_json()
    X, y = regression_data(seed=1)
    xgboost.train({"objective": "reg:squarederror"}, xgboost.DMatrix(X, y), 4).save_model(folder / "model.json")

    result = runner.invoke(args=["models", "load", str(folder), "--name", "iris"])

    assert result.exit_code == 1 and "approval" in result.output
    assert client.get("/models/iris/aliases").get_json()["production"] == 1  # version 2 is registered, not served
