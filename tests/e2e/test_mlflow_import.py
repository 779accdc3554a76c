"""import-mlflow against a real MLflow: a tracking server started here, and a local mlruns folder.

MLflow logs the models with ``mlflow.sklearn.log_model`` in its own environment (.venv-mlflow,
tests/e2e/mlflow_peer/log_models.py): bare estimators and Pipelines of every kind in its three file
formats, a k-nearest-neighbours model this registry does not serve, aliases and legacy stages. The
import runs as CI runs it (``python -m trainers import-mlflow``) into a real gunicorn registry, and
every imported version must predict what MLflow's own ``pyfunc`` predicts on the same rows.
"""
import json
import shutil
import subprocess
import sys

import pytest
import requests

from bench.harness import mlflow_server
from config import BASE_DIR
from tests.databases import BACKEND

pytestmark = pytest.mark.skipif(
    BACKEND != "sqlite",
    reason=("reading MLflow's runs and files is what it tests; the registry's side is the API's, which "
            "tests/integration runs on both backends: the SQLite pass runs it"),
)

LOG_MODELS = BASE_DIR / "tests" / "e2e" / "mlflow_peer" / "log_models.py"
SUPPORTED = ("mlf-linear", "mlf-logistic", "mlf-tree", "mlf-forest")


def log_models(tracking_uri: str, manifest_path, *args) -> dict:
    """Log the scenario into MLflow; its manifest (what was logged, and pyfunc's predictions)."""
    result = subprocess.run([str(mlflow_server.MLFLOW_PYTHON), str(LOG_MODELS), "--tracking-uri", tracking_uri,
                             "--out", str(manifest_path), *args], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(manifest_path.read_text())


def import_mlflow(live, tracking_uri: str, *args, token=None) -> subprocess.CompletedProcess:
    """``python -m trainers import-mlflow`` into the live registry."""
    env = dict(live.env, REGISTRY_TOKEN=token if token is not None else live.admin_token)
    env.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.run(
        [sys.executable, "-m", "trainers", "import-mlflow", "--tracking-uri", tracking_uri, "--registry", live.url,
         *args], cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=600,
    )


def summary_of(result: subprocess.CompletedProcess) -> dict:
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)


def outcomes(summary: dict) -> dict:
    """{(mlflow model, mlflow version): (action, registry version)}."""
    return {(model["mlflow_name"], item["version"]): (item["action"], item["registry_version"])
            for model in summary["models"] for item in model["versions"]}


@pytest.fixture(scope="module")
def mlflow(tmp_path_factory):
    """A real MLflow tracking server with the scenario logged: (url, manifest)."""
    root = tmp_path_factory.mktemp("mlflow")
    with mlflow_server.running(root) as server:
        yield server.url, log_models(server.url, root / "manifest.json")


@pytest.fixture(scope="module")
def imported(mlflow, live_registry):
    """The summaries of a dry run, the import, and a second import, from the tracking server."""
    url, _ = mlflow
    dry = summary_of(import_mlflow(live_registry, url, "--dry-run", "--json"))
    first = summary_of(import_mlflow(live_registry, url, "--json"))
    second = summary_of(import_mlflow(live_registry, url, "--json"))
    return dry, first, second


def get(live, path):
    response = requests.get(f"{live.url}{path}", timeout=10)
    response.raise_for_status()
    return response.json()


def test_a_dry_run_lists_what_it_would_do_and_changes_nothing(imported, live_registry):
    dry, _, _ = imported
    assert dry["dry_run"] is True and dry["totals"]["imported"] == 0
    actions = outcomes(dry)
    assert actions[("mlf-linear", 1)] == ("would import", None)
    assert actions[("mlf-forest", 2)] == ("would import", None)
    # the dry run read the KNN's files too, but only the registry can say it cannot serve it: it would try
    assert actions[("mlf-knn", 1)] == ("would import", None)


def test_every_supported_version_is_imported_in_version_order_and_the_knn_is_skipped_with_the_reason(imported):
    _, first, _ = imported
    actions = outcomes(first)
    for model in SUPPORTED:
        assert actions[(model, 1)] == ("imported", 1)
    assert actions[("mlf-linear", 2)] == ("imported", 2) and actions[("mlf-forest", 2)] == ("imported", 2)
    assert actions[("mlf-logistic", 2)] == ("imported", 2) and actions[("mlf-tree", 2)] == ("imported", 2)
    knn = next(m for m in first["models"] if m["mlflow_name"] == "mlf-knn")["versions"][0]
    assert knn["action"] == "skipped" and knn["reason"].startswith("the registry refused it: ")
    assert "KNeighborsRegressor" in knn["reason"]
    assert first["totals"] == {"imported": 8, "existing": 0, "skipped": 1, "would import": 0}


def test_a_second_run_imports_nothing_new(imported, live_registry):
    _, first, second = imported
    assert second["totals"]["imported"] == 0 and second["totals"]["existing"] == 8
    assert all(alias["action"] in ("unchanged", "skipped") for model in second["models"] for alias in model["aliases"])
    assert get(live_registry, "/models/mlf-linear")["version_count"] == 2
    assert "mlf-knn" not in [model["name"] for model in get(live_registry, "/models?per_page=500")["items"]]


def test_aliases_and_legacy_stages_become_aliases(imported, mlflow, live_registry):
    _, manifest = mlflow
    assert get(live_registry, "/models/mlf-linear/aliases") == {"champion": 1, "production": 2}
    assert get(live_registry, "/models/mlf-logistic/aliases") == {"production": 2}
    assert get(live_registry, "/models/mlf-tree/aliases") == {"staging": 1}
    assert get(live_registry, "/models/mlf-forest/aliases") == {"champion": 2}
    assert manifest["models"]["mlf-linear"]["versions"]["2"]["stage"] == "Production"
    history = get(live_registry, "/models/mlf-linear/history")["items"]
    assert {event["reason"] for event in history} == {"imported from MLflow (alias champion)",
                                                      "imported from MLflow (legacy stage Production)",
                                                      "imported from MLflow (its description and tags)"}
    assert {event["action"] for event in history} == {"promote", "model_update"}  # the words are in the ledger too


def test_descriptions_tags_metrics_params_and_lineage_come_along(imported, mlflow, live_registry):
    _, manifest = mlflow
    logged = manifest["models"]["mlf-linear"]
    version = get(live_registry, "/models/mlf-linear/versions/1")
    assert version["description"] == logged["versions"]["1"]["description"] == "first try"
    assert version["tags"] == {**logged["versions"]["1"]["tags"], "mlflow.model": "mlf-linear", "mlflow.version": "1"}
    assert version["metrics"] == pytest.approx(logged["versions"]["1"]["metrics"])
    assert version["params"] == logged["versions"]["1"]["params"]
    assert version["lineage"]["mlflow"]["serialization_format"] == "cloudpickle"
    assert version["lineage"]["mlflow"]["run_id"] and version["lineage"]["imported_from"] == "mlflow"
    assert get(live_registry, "/models/mlf-linear/versions/2")["tags"]["mlflow.stage"] == "Production"
    model = get(live_registry, "/models/mlf-linear")
    assert (model["description"], model["tags"]) == (logged["description"], logged["tags"])


def test_signatures_and_input_examples_come_along(imported, live_registry):
    linear = get(live_registry, "/models/mlf-linear/versions/1")
    assert [f["name"] for f in linear["signature"]["features"]] == ["a", "b", "c"]
    assert len(linear["input_example"]) == 3 and len(linear["input_example"][0]) == 3
    tree = get(live_registry, "/models/mlf-tree/versions/1")  # fitted on a bare array: a tensor signature
    assert [f["name"] for f in tree["signature"]["features"]] == ["x0", "x1", "x2", "x3"]
    assert tree["input_example"] and len(tree["input_example"][0]) == 4


@pytest.mark.parametrize("model", SUPPORTED)
def test_imported_versions_predict_what_mlflow_pyfunc_predicts(imported, mlflow, live_registry, model):
    _, manifest = mlflow
    for number, logged in manifest["models"][model]["versions"].items():
        body = ({"dataframe_split": {"columns": logged["columns"], "data": logged["rows"]}} if logged["columns"]
                else {"instances": logged["rows"]})
        answer = requests.post(f"{live_registry.url}/models/{model}/{number}/predict", json=body, timeout=30)
        assert answer.status_code == 200, answer.text
        predictions = answer.json()["predictions"]
        if all(isinstance(value, str) for value in logged["pyfunc"]):
            assert predictions == logged["pyfunc"], (model, number)
        else:
            assert predictions == pytest.approx(logged["pyfunc"], rel=1e-12, abs=1e-12), (model, number)


def test_an_alias_deleted_here_is_set_again_and_one_moved_here_is_kept(mlflow, live_registry):
    url, _ = mlflow
    requests.delete(f"{live_registry.url}/models/mlf-tree/aliases/staging", headers=live_registry.headers, timeout=10)
    requests.post(f"{live_registry.url}/models/mlf-linear/versions/2/promote", json={"alias": "champion"},
                  headers=live_registry.headers, timeout=10).raise_for_status()
    summary = summary_of(import_mlflow(live_registry, url, "--model", "mlf-tree", "--model", "mlf-linear", "--json"))
    aliases = {(model["mlflow_name"], alias["alias"]): alias for model in summary["models"] for alias in model["aliases"]}
    assert aliases[("mlf-tree", "staging")]["action"] == "set"
    assert aliases[("mlf-linear", "champion")]["action"] == "kept"
    assert "moved since the last import" in aliases[("mlf-linear", "champion")]["reason"]
    assert get(live_registry, "/models/mlf-linear/aliases") == {"champion": 2, "production": 2}


def test_bad_arguments_exit_2_and_an_unknown_model_exits_1(mlflow, live_registry, tmp_path):
    url, _ = mlflow
    assert import_mlflow(live_registry, "sqlite:///mlflow.db").returncode == 2
    assert import_mlflow(live_registry, str(tmp_path / "nothing-here")).returncode == 2
    unknown = import_mlflow(live_registry, url, "--model", "no-such-model")
    assert unknown.returncode == 1 and "no-such-model" in unknown.stderr


def test_a_copied_mlruns_folder_imports_the_same_way_and_a_ci_token_is_enough(live_registry, tmp_path):
    logged_at = tmp_path / "logged" / "mlruns"
    manifest = log_models(logged_at.as_uri(), tmp_path / "manifest.json", "--prefix", "local-")
    copied = tmp_path / "copied" / "mlruns"
    shutil.copytree(logged_at, copied)
    shutil.rmtree(tmp_path / "logged")  # the paths the store recorded are gone: only the copy is left
    ci = requests.post(f"{live_registry.url}/tokens", json={"name": "import-ci", "role": "ci"},
                       headers=live_registry.headers, timeout=10).json()["token"]
    models = ["local-mlf-linear", "local-mlf-forest", "local-mlf-knn"]
    summary = summary_of(import_mlflow(live_registry, str(copied), *[f"--model={m}" for m in models], "--json", token=ci))
    assert summary["source"] == copied.resolve().as_uri()
    assert summary["totals"] == {"imported": 4, "existing": 0, "skipped": 1, "would import": 0}
    linear = next(model for model in summary["models"] if model["name"] == "local-mlf-linear")
    assert linear["notes"] == ["the model's description and tags were not set: that needs an admin token"]
    assert get(live_registry, "/models/local-mlf-linear/aliases") == {"champion": 1, "production": 2}
    for model in models[:2]:
        for number, logged in manifest["models"][model]["versions"].items():
            body = {"dataframe_split": {"columns": logged["columns"], "data": logged["rows"]}}
            answer = requests.post(f"{live_registry.url}/models/{model}/{number}/predict", json=body, timeout=30)
            assert answer.json()["predictions"] == pytest.approx(logged["pyfunc"], rel=1e-12, abs=1e-12), (model, number)
