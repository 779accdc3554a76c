"""Rollouts on a real gunicorn with three workers: sticky canary shares, changes under load, shadows."""
import time

import pytest
import requests

from bench.harness.models import expected_prediction, scaled_sum, upload
from bench.harness.traffic import CLOCK_SLACK_SECONDS, Load, move
from tests.e2e.rollouts import Step, change, expected_version, figures_once, keyed_versions

CLIENT_THREADS = 6


def new_model(live, name: str, factors=(1, 2, 3)) -> str:
    """``name`` with one version per factor (k·sum), production on 1."""
    for factor in factors:
        response = upload(live, name, scaled_sum(factor))
        assert response.status_code == 201, response.text
    move(live, "promote", name, 1)
    return name


def settle(live) -> None:
    """Wait out the propagation window, after which every worker serves the latest change."""
    time.sleep(live.refresh_seconds + CLOCK_SLACK_SECONDS)


def test_a_tenth_of_a_thousand_keys_go_to_the_canary_and_each_keeps_its_version_on_every_worker(live_registry):
    name = new_model(live_registry, "sticky")
    change(live_registry, name, "start", {"canary": {"version": 2, "percent": 10}, "sticky_header": "X-User-Id"})
    settle(live_registry)
    url = f"{live_registry.url}/models/{name}/production/predict"
    keys = [f"user-{i}" for i in range(1000)]

    first = keyed_versions([url], keys)
    again = keyed_versions([url], keys[:300])

    share = sum(answers[0][0] == 2 for answers in first.values()) / len(keys) * 100
    assert 5 <= share <= 15
    for key, answers in first.items():
        version, route, prediction = answers[0]
        assert version == expected_version(name, key, 10, primary=1, canary=2)
        assert route == ("canary" if version == 2 else "primary")
        assert prediction == pytest.approx(expected_prediction(version))
    for key, answers in again.items():
        assert answers[0][0] == first[key][0][0]


def test_every_request_answered_from_the_start_of_a_rollout_is_counted_on_every_worker(live_registry):
    name = new_model(live_registry, "from-the-start")
    url = f"{live_registry.url}/models/{name}/production/predict"
    change(live_registry, name, "start", {"canary": {"version": 2, "percent": 50}})
    routes = {"primary": 0, "canary": 0}
    deadline = time.monotonic() + live_registry.refresh_seconds  # the workers that learn of it late answer too
    with requests.Session() as session:
        while time.monotonic() < deadline:
            answer = session.post(url, json={"instances": [[1.0, 2.0, 3.0]]}, timeout=10)
            assert answer.status_code == 200
            routes[answer.headers["X-Model-Route"]] += 1
    sent = sum(routes.values())
    figures = figures_once(live_registry, name, lambda f: f["primary"]["requests"] + f["canary"]["requests"] >= sent)
    assert (figures["primary"]["requests"], figures["canary"]["requests"]) == (routes["primary"], routes["canary"])


def test_starting_changing_completing_and_aborting_rollouts_under_load_fails_no_request(live_registry):
    name = new_model(live_registry, "busy")
    plan = [
        ("start", {"canary": {"version": 2, "percent": 20}}, {1, 2}),
        ("start", {"canary": {"version": 2, "percent": 60}, "shadow": {"version": 3, "percent": 50}}, {1, 2}),
        ("abort", None, {1}),
        ("start", {"canary": {"version": 3, "percent": 30}}, {1, 3}),
        ("complete", None, {3}),
    ]
    window = live_registry.refresh_seconds
    url = f"{live_registry.url}/models/{name}/production/predict"
    steps = [Step(float("-inf"), float("-inf"), {1})]
    with Load([url], CLIENT_THREADS) as load:
        for action, body, versions in plan:
            time.sleep(window * 1.5)
            started = time.monotonic()
            change(live_registry, name, action, body)
            steps.append(Step(started, time.monotonic(), versions))
        time.sleep(window * 1.5)

    answers = load.answers
    assert len(answers) > 200
    assert [a for a in answers if a.status != 200] == []
    for answer in answers:
        assert answer.header_version == str(answer.version)
        assert answer.prediction == pytest.approx(expected_prediction(answer.version))  # never a shadow's answer
    for step, following in zip(steps, steps[1:] + [Step(float("inf"), float("inf"), set())]):
        settled = [a for a in answers
                   if a.started > step.returned + window + CLOCK_SLACK_SECONDS and a.finished < following.started]
        assert settled and {a.version for a in settled} <= step.versions, step
    final = [a for a in answers if a.started > steps[-1].returned + window + CLOCK_SLACK_SECONDS]
    assert {(a.version, a.route) for a in final} == {(3, "primary")}


def test_shadow_figures_add_up_over_the_workers_and_callers_only_get_the_primarys_answers(live_registry):
    name = new_model(live_registry, "shadowed")
    change(live_registry, name, "start", {"shadow": {"version": 3, "percent": 50}})
    settle(live_registry)
    url = f"{live_registry.url}/models/{name}/production/predict"

    answers = keyed_versions([url], [f"k{i}" for i in range(200)])

    for (version, route, prediction), in answers.values():
        assert (version, route, prediction) == (1, "primary", pytest.approx(expected_prediction(1)))
    figures = figures_once(live_registry, name, lambda f: f["primary"]["requests"] == 200
                           and f["shadow"]["compared"] + f["shadow"]["dropped"] + f["shadow"]["errors"] >= 60)
    assert figures["primary"]["requests"] == 200 and figures["primary"]["errors"] == 0
    shadow = figures["shadow"]
    assert shadow["errors"] == 0
    assert 60 <= shadow["compared"] + shadow["dropped"] <= 140  # 50 % of 200, with room for chance
    assert shadow["compared"] > 0
    # v3 answers 9 where v1 answers 3
    assert shadow["mean_abs_diff"] == pytest.approx(6.0) and shadow["max_abs_diff"] == pytest.approx(6.0)
