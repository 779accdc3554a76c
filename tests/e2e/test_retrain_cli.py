"""The trainers' command line as CI runs it, against a real gunicorn registry.

Some tests start ``python -m trainers`` as a new process, exactly as CI does; the others invoke the
same click command in this process, which saves each run two seconds of imports and changes
nothing else: the same code, the same HTTP to the same server, the same exit codes.
"""
import json
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import requests
from click.testing import CliRunner

from bench.harness.traffic import CLOCK_SLACK_SECONDS
from config import BASE_DIR
from tests.databases import BACKEND
from trainers.cli import cli

pytestmark = pytest.mark.skipif(
    BACKEND != "sqlite",
    reason=("the command line's steps and exit codes are what it tests; the routes behind them run on both "
            "backends in tests/integration: the SQLite pass runs it"),
)

KEPT_EXIT_CODE = 3


def run_process(live, *args, token=None) -> subprocess.CompletedProcess:
    """``python -m trainers ARGS`` from the repository root, with the admin token unless told."""
    return subprocess.run(
        [sys.executable, "-m", "trainers", *map(str, args)],
        cwd=BASE_DIR, env=_env(live, token), capture_output=True, text=True, timeout=300,
    )


def run_cli(live, *args, token=None) -> subprocess.CompletedProcess:
    """The same command in this process; its outcome as ``run_process`` reports it."""
    result = CliRunner().invoke(cli, [*map(str, args)], env=_env(live, token), prog_name="python -m trainers")
    return subprocess.CompletedProcess(args, result.exit_code, result.stdout, result.stderr)


def _env(live, token) -> dict:
    return dict(live.env, REGISTRY_TOKEN=token if token is not None else live.admin_token)


def retrain(live, model, data, *args, token=None, run=run_cli) -> subprocess.CompletedProcess:
    """``retrain --json`` of ``model`` on the diabetes-like ``data`` (target column ``target``)."""
    return run(live, "retrain", "--registry", live.url, "--model", model, "--data", data,
               "--target", "target", "--json", *args, token=token)


def get(live, path):
    return requests.get(f"{live.url}{path}", timeout=10)


@pytest.fixture(scope="module")
def diabetes_csv(live_registry, tmp_path_factory):
    """scikit-learn's diabetes data exported by the CLI."""
    path = tmp_path_factory.mktemp("data") / "diabetes.csv"
    result = run_process(live_registry, "export-example", "diabetes", path)
    assert result.returncode == 0, result.stderr
    return path


@pytest.fixture(scope="module")
def mixed_csv(tmp_path_factory):
    """Numbers with gaps and a text column, labelled by both."""
    rng = np.random.default_rng(0)
    size = rng.normal(10, 3, 120)
    colour = rng.choice(["red", "green", "blue"], 120)
    label = np.where(size + (colour == "red") * 3 > 11, "big", "small")
    frame = pd.DataFrame({"size": size.round(3), "colour": colour, "label": label})
    frame.loc[::9, "size"] = np.nan
    path = tmp_path_factory.mktemp("data") / "mixed.csv"
    frame.to_csv(path, index=False)
    return path


def test_retrain_with_no_champion_promotes_the_first_version(live_registry, diabetes_csv):
    result = retrain(live_registry, "first", diabetes_csv, "--kind", "linear", run=run_process)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["decision"] == "promoted"
    assert (summary["candidate_version"], summary["champion_version"]) == (1, None)
    assert get(live_registry, "/models/first/aliases").json() == {"production": 1}
    version = get(live_registry, "/models/first/versions/1").json()
    assert version["kind"] == "linear" and version["task"] == "regression"
    assert version["metrics"]["r2"] == pytest.approx(summary["candidate_score"])
    assert version["lineage"]["target"] == "target" and len(version["lineage"]["dataset_sha256"]) == 64
    reference = get(live_registry, "/models/first/versions/1/reference").json()  # drift is judged by the training rows
    (evaluation,) = get(live_registry, "/models/first/versions/1/evaluations").json()["items"]
    assert reference["source"] == "training"
    assert reference["rows"] + evaluation["dataset"]["rows"] == len(pd.read_csv(diabetes_csv))  # the rows it was fitted on
    assert set(reference["features"]) == {feature["name"] for feature in version["signature"]["features"]}


def test_retrain_with_a_better_kind_promotes_it_and_the_history_shows_both_scores(
    live_registry, diabetes_csv
):
    stump = retrain(live_registry, "better", diabetes_csv, "--kind", "tree", "--param", "max_depth=1")
    assert stump.returncode == 0, stump.stderr
    result = retrain(live_registry, "better", diabetes_csv, "--kind", "linear", "--metric", "r2",
                     "--min-improvement", "0.005")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["decision"] == "promoted"
    assert (summary["candidate_version"], summary["champion_version"]) == (2, 1)
    assert get(live_registry, "/models/better/aliases").json() == {"production": 2}
    latest_event = get(live_registry, "/models/better/history").json()["items"][0]
    assert (latest_event["from_version"], latest_event["to_version"]) == (1, 2)
    scores = f"r2 {summary['candidate_score']:.4f} vs champion v1 {summary['champion_score']:.4f}"
    assert scores in latest_event["reason"]


def test_retrain_with_a_worse_candidate_exits_3_and_leaves_the_alias_where_it_was(
    live_registry, diabetes_csv
):
    assert retrain(live_registry, "worse", diabetes_csv, "--kind", "forest").returncode == 0
    result = retrain(live_registry, "worse", diabetes_csv, "--kind", "tree", "--param", "max_depth=1",
                     "--metric", "rmse", "--min-improvement", "0.005")
    assert result.returncode == KEPT_EXIT_CODE, result.stderr
    summary = json.loads(result.stdout)
    assert summary["decision"] == "kept" and summary["candidate_score"] > summary["champion_score"]
    assert get(live_registry, "/models/worse/aliases").json() == {"production": 1}
    assert get(live_registry, "/models/worse/versions/2").status_code == 200
    assert len(get(live_registry, "/models/worse/history").json()["items"]) == 1


def test_retrain_with_a_rejected_token_exits_non_zero_and_registers_nothing(live_registry, diabetes_csv):
    result = retrain(live_registry, "rejected", diabetes_csv, "--kind", "linear", token="not-a-token", run=run_process)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("Error: token rejected")
    assert get(live_registry, "/models/rejected").status_code == 404


def test_a_trained_mixed_dtype_pipeline_registers_promotes_and_predicts_raw_rows(
    live_registry, mixed_csv, tmp_path
):
    out = tmp_path / "mixed.joblib"
    trained = run_cli(live_registry, "train", "--data", mixed_csv, "--target", "label", "--kind", "logistic",
                      "--out", out)
    assert trained.returncode == 0, trained.stderr
    registered = run_cli(live_registry, "register", "--registry", live_registry.url, "--model", "mixed", out)
    assert registered.returncode == 0, registered.stderr
    assert registered.stdout.strip() == "1"
    promoted = requests.post(f"{live_registry.url}/models/mixed/versions/1/promote", json={"reason": "first"},
                             headers=live_registry.headers, timeout=30)
    assert promoted.status_code == 200, promoted.text
    rows = {"dataframe_records": [{"size": 14.0, "colour": "red"}, {"size": 4.0, "colour": "purple"}]}
    answer = requests.post(f"{live_registry.url}/models/mixed/predict", json=rows, timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.json()["predictions"] == ["big", "small"]


def test_registering_the_same_artifact_twice_prints_the_same_version(live_registry, mixed_csv, tmp_path):
    out = tmp_path / "again.joblib"
    assert run_cli(live_registry, "train", "--data", mixed_csv, "--target", "label", "--kind", "tree",
                   "--out", out).returncode == 0
    versions = [run_cli(live_registry, "register", "--registry", live_registry.url, "--model", "again", out)
                for _ in range(2)]
    assert [v.stdout.strip() for v in versions] == ["1", "1"], [v.stderr for v in versions]


def test_retrain_records_both_scores_as_evaluations_on_the_shared_holdout(live_registry, diabetes_csv):
    assert retrain(live_registry, "fair", diabetes_csv, "--kind", "tree", "--param", "max_depth=1").returncode == 0
    result = retrain(live_registry, "fair", diabetes_csv, "--kind", "linear", "--metric", "r2")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)

    candidate = get(live_registry, "/models/fair/versions/2/evaluations").json()["items"]
    assert len(candidate) == 1 and candidate[0]["metrics"]["r2"] == pytest.approx(summary["candidate_score"])
    dataset = candidate[0]["dataset"]
    assert dataset["name"] == "diabetes.csv (hold-out)" and len(dataset["sha256"]) == 64
    compared = get(live_registry, f"/models/fair/evaluations?dataset={dataset['sha256']}&sort=-metrics.r2").json()
    assert [(e["version"], e["metrics"]["r2"]) for e in compared["items"]] == [
        (2, pytest.approx(summary["candidate_score"])), (1, pytest.approx(summary["champion_score"])),
    ]
    assert {e["dataset"]["rows"] for e in compared["items"]} == {dataset["rows"]}


WAIT_EXIT_CODE = 4


def every_worker_routes_the_rollout(live) -> None:
    """Wait out the refresh window, within which every worker sees a rollout started elsewhere."""
    time.sleep(live.refresh_seconds + CLOCK_SLACK_SECONDS)


def judge(live, model, *args):
    """``rollout judge`` of ``model``'s production alias."""
    return run_cli(live, "rollout", "judge", "--registry", live.url, "--model", model, *args)


def test_retrain_with_canary_starts_the_winner_as_a_canary_and_judge_completes_it(live_registry, diabetes_csv):
    stump = retrain(live_registry, "canaried", diabetes_csv, "--kind", "tree", "--param", "max_depth=1")
    assert stump.returncode == 0, stump.stderr
    result = retrain(live_registry, "canaried", diabetes_csv, "--kind", "linear",
                     "--canary", "50", "--sticky-header", "X-User-Id")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["decision"] == "canary"
    rollout = get(live_registry, "/models/canaried/aliases/production/rollout").json()
    assert (rollout["canary"]["version"], rollout["canary"]["percent"], rollout["sticky_header"]) == (2, 50, "X-User-Id")
    assert get(live_registry, "/models/canaried/aliases").json() == {"production": 1}

    assert judge(live_registry, "canaried", "--min-requests", "20").returncode == WAIT_EXIT_CODE
    every_worker_routes_the_rollout(live_registry)
    row = {name: 0.01 for name in ("age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6")}
    for user in range(200):
        answer = requests.post(f"{live_registry.url}/models/canaried/production/predict", json={"instances": [row]},
                               headers={"X-User-Id": f"user-{user}"}, timeout=10)
        assert answer.status_code == 200
    completed = wait_for_judge(live_registry, "canaried", "--min-requests", "20")
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert get(live_registry, "/models/canaried/aliases").json() == {"production": 2}
    event = get(live_registry, "/models/canaried/history").json()["items"][0]
    assert event["action"] == "rollout_promote" and event["reason"].startswith("rollout judge:")


def test_retrain_with_a_plan_starts_the_winner_as_a_canary_the_registry_walks(live_registry, diabetes_csv, tmp_path):
    assert retrain(live_registry, "planned", diabetes_csv, "--kind", "tree", "--param", "max_depth=1").returncode == 0
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"steps": [{"percent": 10, "min_requests": 1000}, {"percent": 30, "min_requests": 1000}],
                                "gates": {"latency": {"max_p99_ratio": 2}}}))
    result = retrain(live_registry, "planned", diabetes_csv, "--kind", "linear", "--plan", str(plan))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["decision"] == "canary"
    rollout = get(live_registry, "/models/planned/aliases/production/rollout").json()
    assert (rollout["canary"]["version"], rollout["canary"]["percent"]) == (2, 10)
    assert (rollout["plan"]["state"], [s["percent"] for s in rollout["plan"]["steps"]]) == ("running", [10, 30])
    assert rollout["plan"]["gates"]["latency"]["settings"] == {"max_p99_ratio": 2}
    assert get(live_registry, "/models/planned/aliases").json() == {"production": 1}


@pytest.mark.parametrize("args, words", [
    (["--plan", "default", "--canary", "10"], "not both"),
    (["--plan", "missing.json"], "cannot read missing.json"),
    (["--sticky-header", "X-User"], "only applies with --canary or --plan"),
])
def test_retrain_refuses_a_plan_it_cannot_use_before_training(live_registry, diabetes_csv, args, words):
    result = retrain(live_registry, "unplanned", diabetes_csv, "--kind", "linear", *args)
    assert result.returncode == 2 and words in result.stderr
    assert get(live_registry, "/models/unplanned").status_code == 404


def wait_for_judge(live, model, *args, deadline_seconds=15.0):
    """Judge until the figures (flushed by every worker about once a second) decide, or the deadline."""
    deadline = time.monotonic() + deadline_seconds
    while True:
        result = judge(live, model, *args)
        if result.returncode != WAIT_EXIT_CODE or time.monotonic() > deadline:
            return result
        time.sleep(0.2)


def test_judge_is_not_moved_by_rows_the_canary_refuses_and_aborts_on_a_failed_gate(live_registry, diabetes_csv):
    assert retrain(live_registry, "judged", diabetes_csv, "--kind", "tree", "--param", "max_depth=1").returncode == 0
    assert retrain(live_registry, "judged", diabetes_csv, "--kind", "linear",
                   "--canary", "50", "--sticky-header", "X-User-Id").returncode == 0
    every_worker_routes_the_rollout(live_registry)
    bad_row = {"age": "not a number"}
    for user in range(60):  # a caller's malformed rows: refused by either arm, never an error of the canary
        refused = requests.post(f"{live_registry.url}/models/judged/production/predict", json={"instances": [bad_row]},
                                headers={"X-User-Id": f"user-{user}"}, timeout=10)
        assert refused.status_code == 422
    waiting = wait_for_judge(live_registry, "judged", "--min-requests", "20", deadline_seconds=3.0)
    assert waiting.returncode == WAIT_EXIT_CODE, waiting.stdout + waiting.stderr
    figures = get(live_registry, "/models/judged/aliases/production/rollout").json()
    assert figures["canary"]["errors"] == 0 and figures["canary"]["refused"] > 0

    row = {name: 0.01 for name in ("age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6")}
    for user in range(200):
        answer = requests.post(f"{live_registry.url}/models/judged/production/predict", json={"instances": [row]},
                               headers={"X-User-Id": f"user-{user}"}, timeout=10)
        assert answer.status_code == 200
    aborted = wait_for_judge(live_registry, "judged", "--min-requests", "20", "--max-p99-ratio", "0.001")
    assert aborted.returncode == KEPT_EXIT_CODE, aborted.stdout + aborted.stderr
    assert "p99" in aborted.stdout
    assert get(live_registry, "/models/judged/aliases/production/rollout").status_code == 404
    assert get(live_registry, "/models/judged/aliases").json() == {"production": 1}
