"""retrain's decision: promote the candidate only when it beats the champion on the same rows."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from sklearn.linear_model import LinearRegression

from trainers import artifact
from trainers import cli as cli_module
from trainers.datasets import from_frame
from trainers.errors import ChampionUnusable, ConfigurationError
from trainers.retrain import KEPT, PROMOTED, Champion, RetrainRequest, decide, retrain
from trainers.training import TrainingSpec, train


def decision(metric, candidate, champion, margin=0.0, candidate_version=2):
    request = RetrainRequest(model="m", min_improvement=margin)
    return decide(request, metric, candidate_version, candidate, champion, {metric: candidate})


def test_the_first_candidate_is_promoted_when_the_alias_is_unset():
    outcome = decision("r2", 0.7, None)
    assert outcome.decision == PROMOTED
    assert outcome.reason == "retrain: r2 0.7000, no champion on production yet"


def test_a_candidate_better_by_the_margin_is_promoted_and_the_reason_records_both_scores():
    outcome = decision("r2", 0.8123, Champion(version=3, score=0.7990), margin=0.005)
    assert outcome.decision == PROMOTED
    assert outcome.reason == "retrain: r2 0.8123 vs champion v3 0.7990 (+0.0133 ≥ 0.005)"


def test_a_candidate_better_by_less_than_the_margin_is_kept():
    outcome = decision("r2", 0.8010, Champion(version=3, score=0.7990), margin=0.005)
    assert outcome.decision == KEPT
    assert outcome.reason == "retrain: r2 0.8010 vs champion v3 0.7990 (+0.0020 < 0.005)"


def test_a_margin_met_up_to_float_rounding_counts_as_met():
    assert decision("r2", 0.805, Champion(version=1, score=0.8), margin=0.005).decision == PROMOTED


@pytest.mark.parametrize(("candidate", "expected"), [(9.0, PROMOTED), (10.0, KEPT), (11.0, KEPT)])
def test_for_an_error_metric_lower_is_better(candidate, expected):
    assert decision("rmse", candidate, Champion(version=1, score=10.0)).decision == expected


def test_an_equal_score_is_kept_even_with_no_margin():
    assert decision("accuracy", 0.9, Champion(version=1, score=0.9)).decision == KEPT


def test_a_candidate_identical_to_the_champion_is_kept():
    outcome = decision("r2", 0.9, Champion(version=2, score=0.5), candidate_version=2)
    assert outcome.decision == KEPT and "identical to champion v2" in outcome.reason


def spec(kind="forest", **params):
    if kind == "forest":
        params = {"n_estimators": 10, **params}
    return TrainingSpec(kind=kind, target="price", params=params)


def champion_from(frame, kind, **params):
    return artifact.to_bytes(train(from_frame(frame), spec(kind, **params)).pipeline)


def test_with_no_champion_retrain_uploads_and_promotes_the_first_version(fake_registry, regression_frame):
    outcome = retrain(fake_registry, from_frame(regression_frame), spec(), RetrainRequest(model="m"))
    assert (outcome.decision, outcome.candidate_version, outcome.champion_version) == (PROMOTED, 1, None)
    assert fake_registry.aliases == {"production": 1}
    metadata = fake_registry.uploads[0]
    assert metadata["metrics"]["r2"] == outcome.candidate_score
    assert metadata["lineage"]["target"] == "price" and metadata["input_example"]


def test_the_candidates_complete_training_rows_are_sent_as_its_drift_reference(fake_registry, regression_frame):
    outcome = retrain(fake_registry, from_frame(regression_frame), spec(), RetrainRequest(model="m"))
    (sent,) = fake_registry.references
    assert (sent["version"], sent["source"]) == (outcome.candidate_version, "training")
    rows = sent["rows"]
    assert list(rows.columns) == ["size", "age", "colour"] and not rows.isna().any().any()
    holdout = fake_registry.evaluations[0]["dataset"]["rows"]
    complete = len(regression_frame.drop(columns="price").dropna())
    assert len(rows) <= len(regression_frame) - holdout and len(rows) >= complete - holdout  # fitted rows only


def test_a_weaker_candidate_is_uploaded_but_the_alias_stays_on_the_champion(fake_registry, regression_frame):
    champion = fake_registry.add_version(champion_from(regression_frame, "linear"), "regression")
    fake_registry.aliases["production"] = champion
    outcome = retrain(fake_registry, from_frame(regression_frame), spec("tree", max_depth=1),
                      RetrainRequest(model="m", metric="r2"))
    assert outcome.decision == KEPT and outcome.candidate_version == 2
    assert outcome.champion_score > outcome.candidate_score
    assert fake_registry.aliases == {"production": 1} and fake_registry.promotions == []


def test_a_better_candidate_is_promoted_with_the_scores_in_the_reason(fake_registry, regression_frame):
    champion = fake_registry.add_version(champion_from(regression_frame, "tree", max_depth=1), "regression")
    fake_registry.aliases["production"] = champion
    outcome = retrain(fake_registry, from_frame(regression_frame), spec("linear"),
                      RetrainRequest(model="m", metric="rmse", min_improvement=0.1))
    assert outcome.decision == PROMOTED and outcome.champion_score > outcome.candidate_score
    assert fake_registry.aliases == {"production": 2}
    reason = fake_registry.promotions[0]["reason"]
    assert f"rmse {outcome.candidate_score:.4f} vs champion v1 {outcome.champion_score:.4f}" in reason


def test_the_champion_is_scored_on_the_same_held_out_rows_as_the_candidate(fake_registry, regression_frame):
    # Retraining the very same pipeline must give the champion the candidate's exact score.
    champion_bytes = champion_from(regression_frame, "linear")
    fake_registry.aliases["production"] = fake_registry.add_version(champion_bytes, "regression")
    outcome = retrain(fake_registry, from_frame(regression_frame), spec("linear"), RetrainRequest(model="m"))
    assert outcome.champion_score == outcome.candidate_score
    assert outcome.decision == KEPT and "identical to champion v1" in outcome.reason


def test_a_champion_of_the_other_task_stops_retrain_before_anything_is_uploaded(
    fake_registry, regression_frame
):
    fake_registry.aliases["production"] = fake_registry.add_version(b"x", "classification")
    with pytest.raises(ChampionUnusable, match="champion v1 is a classification model"):
        retrain(fake_registry, from_frame(regression_frame), spec(), RetrainRequest(model="m"))
    assert fake_registry.uploads == []


def test_a_champion_needing_columns_the_data_lacks_stops_retrain_before_anything_is_uploaded(
    fake_registry, regression_frame
):
    wider = regression_frame.assign(extra=1.0)
    champion = fake_registry.add_version(champion_from(wider, "linear"), "regression")
    fake_registry.aliases["production"] = champion
    with pytest.raises(ChampionUnusable, match="needs columns the data lacks: extra"):
        retrain(fake_registry, from_frame(regression_frame), spec(), RetrainRequest(model="m"))
    assert fake_registry.uploads == []


def test_a_champion_fitted_without_names_gets_its_signature_columns_in_its_order(
    fake_registry, regression_frame
):
    frame = regression_frame.drop(columns="colour").dropna()
    columns = ["age", "size"]  # not the data's order
    champion = LinearRegression().fit(frame[columns].to_numpy(), frame["price"])
    number = fake_registry.add_version(artifact.to_bytes(champion), "regression", features=columns)
    fake_registry.aliases["production"] = number
    outcome = retrain(fake_registry, from_frame(frame), spec("linear"), RetrainRequest(model="m"))
    assert outcome.champion_score == pytest.approx(outcome.candidate_score, abs=0.05)


def test_a_metric_of_the_other_task_is_refused_before_training(fake_registry, regression_frame):
    with pytest.raises(ConfigurationError, match="'accuracy' does not apply to regression"):
        retrain(fake_registry, from_frame(regression_frame), spec(),
                RetrainRequest(model="m", metric="accuracy"))
    assert fake_registry.uploads == []


@pytest.fixture
def retrain_cli(monkeypatch, fake_registry, write_csv, regression_frame):
    """Run ``retrain`` through click against the fake registry; returns (invoke, registry)."""
    monkeypatch.setattr(cli_module, "RegistryClient", lambda url, token, timeout: fake_registry)
    data = write_csv(regression_frame)

    def invoke(*args):
        base = ["retrain", "--registry", "http://registry.test", "--model", "m", "--data", str(data),
                "--target", "price"]
        return CliRunner().invoke(cli_module.cli, [*base, *args], env={"REGISTRY_TOKEN": "t"})

    return invoke, fake_registry


def test_retrain_exits_0_when_it_promotes_and_3_when_it_keeps_the_champion(retrain_cli):
    invoke, registry = retrain_cli
    first = invoke("--kind", "linear")
    assert first.exit_code == 0, first.stderr
    assert first.stdout.startswith("promoted m v1 to production: r2 ")
    kept = invoke("--kind", "tree", "--param", "max_depth=1", "--min-improvement", "0.01")
    assert kept.exit_code == 3, kept.stderr
    assert kept.stdout.startswith("kept m v1 on production (uploaded v2): r2 ")
    assert registry.aliases == {"production": 1}


def test_retrain_json_prints_one_summary_object(retrain_cli):
    invoke, _ = retrain_cli
    result = invoke("--kind", "linear", "--metric", "mae", "--json")
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["decision"] == "promoted" and summary["candidate_version"] == 1
    assert summary["champion_version"] is None and summary["metric"] == "mae"
    assert summary["higher_is_better"] is False and summary["min_improvement"] == 0.0
    assert summary["reason"].startswith("retrain: mae ")


def test_retrain_with_bad_data_fails_with_one_line_and_registers_nothing(retrain_cli):
    invoke, registry = retrain_cli
    result = invoke("--kind", "linear", "--target", "colour")
    assert result.exit_code == 1
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith("Error: target 'colour' must be numeric for regression (kind linear)")
    assert registry.uploads == []


def test_retrain_records_the_candidates_and_the_champions_scores_on_the_shared_holdout(
    fake_registry, regression_frame
):
    champion = fake_registry.add_version(champion_from(regression_frame, "tree", max_depth=1), "regression")
    fake_registry.aliases["production"] = champion
    data = from_frame(regression_frame, "prices.csv")

    outcome = retrain(fake_registry, data, spec("linear"), RetrainRequest(model="m", metric="r2"))

    recorded = {e["version"]: e for e in fake_registry.evaluations}
    assert set(recorded) == {1, 2}
    assert recorded[2]["metrics"]["r2"] == outcome.candidate_score
    assert recorded[1]["metrics"]["r2"] == outcome.champion_score
    assert set(recorded[1]["metrics"]) == {"r2", "rmse", "mae"}
    assert recorded[1]["dataset"] == recorded[2]["dataset"]
    dataset = recorded[2]["dataset"]
    assert dataset["name"] == "prices.csv (hold-out)" and len(dataset["sha256"]) == 64
    assert dataset["rows"] < len(regression_frame)


def test_retrains_on_the_same_data_and_split_score_on_the_same_dataset(fake_registry, regression_frame):
    retrain(fake_registry, from_frame(regression_frame), spec("linear"), RetrainRequest(model="m"))
    retrain(fake_registry, from_frame(regression_frame), spec("tree", max_depth=2), RetrainRequest(model="m"))
    other_split = TrainingSpec(kind="linear", target="price", seed=7)
    retrain(fake_registry, from_frame(regression_frame), other_split, RetrainRequest(model="m"))

    hashes = [e["dataset"]["sha256"] for e in fake_registry.evaluations]
    assert len(hashes) == 5  # v1 alone, then each candidate with its champion
    assert len(set(hashes[:3])) == 1 and len(set(hashes[3:])) == 1 and hashes[0] != hashes[3]
