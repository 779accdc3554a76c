"""Rollouts on two replicas (two gunicorn instances, two workers each) sharing one database and artifact root."""
import time

import pytest

from bench.harness import server
from bench.harness.models import expected_prediction, scaled_sum, upload
from bench.harness.traffic import CLOCK_SLACK_SECONDS, Load, move
from tests.databases import fresh_database
from tests.e2e.conftest import ADMIN_TOKEN, ADMISSION_OPEN
from tests.e2e.rollouts import change, expected_version, figures_once, keyed_versions


@pytest.fixture(scope="module")
def replicas(tmp_path_factory):
    """Two running instances sharing the database and the artifact root; migrations run once."""
    root = tmp_path_factory.mktemp("rollout-replicas")
    with fresh_database(root) as database_url, server.running(
            database_url, root, ADMIN_TOKEN, count=2, workers=2, env=ADMISSION_OPEN) as both:
        yield both


def new_model(live, name: str) -> str:
    for factor in (1, 2, 3):
        assert upload(live, name, scaled_sum(factor)).status_code == 201
    move(live, "promote", name, 1)
    return name


def test_a_key_gets_the_same_version_on_both_replicas_and_the_figures_add_up_over_them(replicas):
    first, second = replicas
    name = new_model(first, "sticky-replicas")
    change(first, name, "start", {"canary": {"version": 2, "percent": 30}, "sticky_header": "X-User-Id"})
    time.sleep(first.refresh_seconds + CLOCK_SLACK_SECONDS)
    urls = [f"{live.url}/models/{name}/production/predict" for live in replicas]
    keys = [f"user-{i}" for i in range(300)]

    answers = keyed_versions(urls, keys)

    for key, seen in answers.items():
        expected = expected_version(name, key, 30, primary=1, canary=2)
        assert [version for version, _, _ in seen] == [expected, expected], key
    figures = figures_once(second, name, lambda f: f["primary"]["requests"] + f["canary"]["requests"] == 600)
    on_canary = sum(version == 2 for seen in answers.values() for version, _, _ in seen)
    assert (figures["primary"]["requests"], figures["canary"]["requests"]) == (600 - on_canary, on_canary)


def test_a_rollout_started_and_completed_through_one_replica_fails_no_request_on_either(replicas):
    first, second = replicas
    name = new_model(first, "busy-replicas")
    urls = [f"{live.url}/models/{name}/production/predict" for live in replicas]
    window = first.refresh_seconds
    with Load(urls, threads=6) as load:
        time.sleep(window)
        change(first, name, "start", {"canary": {"version": 2, "percent": 50}, "shadow": {"version": 3, "percent": 50}})
        time.sleep(window * 1.5)
        change(second, name, "complete")
        completed = time.monotonic()
        time.sleep(window * 1.5)

    answers = load.answers
    assert {a.url for a in answers} == set(urls)
    assert [a for a in answers if a.status != 200] == []
    assert {a.version for a in answers} <= {1, 2}  # the shadow, v3, never answers
    for answer in answers:
        assert answer.prediction == pytest.approx(expected_prediction(answer.version))
    for url in urls:
        settled = [a for a in answers if a.url == url and a.started > completed + window + CLOCK_SLACK_SECONDS]
        assert settled and {(a.version, a.route) for a in settled} == {(2, "primary")}
