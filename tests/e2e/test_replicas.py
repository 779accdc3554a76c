"""Two replicas (two gunicorn instances, two workers each) on one database and one artifact root."""
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from bench.harness import server
from bench.harness.models import PROBE_ROW, expected_prediction, scaled_sum, upload
from bench.harness.traffic import CLOCK_SLACK_SECONDS, Load, allowed_versions, move, run_moves
from tests.databases import fresh_database
from tests.e2e.conftest import ADMIN_TOKEN, ADMISSION_OPEN

MOVES = [("promote", 2), ("rollback", None), ("promote", 3), ("promote", 2), ("rollback", None),
         ("rollback", None), ("promote", 3)]


@pytest.fixture(scope="module")
def replicas(tmp_path_factory):
    """Two running instances sharing the database and the artifact root; migrations run once."""
    root = tmp_path_factory.mktemp("replicas")
    with fresh_database(root) as database_url, server.running(
            database_url, root, ADMIN_TOKEN, count=2, workers=2, env=ADMISSION_OPEN) as both:
        yield both


def test_both_replicas_follow_moves_made_through_one_within_the_window_without_failures(replicas):
    first, second = replicas
    name, window = "shared", first.refresh_seconds
    for factor in (1, 2, 3):
        assert upload(first, name, scaled_sum(factor)).status_code == 201
    move(first, "promote", name, 1)
    urls = [f"{live.url}/models/{name}/production/predict" for live in (first, second)]

    with Load(urls, threads=8) as load:
        moves = run_moves(first, name, MOVES, pause=window * 1.5)

    answers = load.answers
    assert {a.url for a in answers} == set(urls)
    assert [a for a in answers if a.status != 200] == []
    for answer in answers:
        assert answer.prediction == pytest.approx(expected_prediction(answer.version))
    assert [a for a in answers if a.version not in allowed_versions(a, 1, moves, window)] == []
    for url in urls:
        settled = [a for a in answers if a.url == url and a.started > moves[-1].returned + window + CLOCK_SLACK_SECONDS]
        assert settled and {a.version for a in settled} == {moves[-1].version}


def test_concurrent_uploads_through_both_replicas_get_distinct_consecutive_versions(replicas):
    models = [scaled_sum(50 + i) for i in range(12)]
    with ThreadPoolExecutor(max_workers=12) as pool:
        responses = list(pool.map(lambda i: upload(replicas[i % 2], "crossing", models[i]), range(12)))
    assert [r.status_code for r in responses] == [201] * 12
    numbers = {r.json()["version"]: 50 + i for i, r in enumerate(responses)}
    assert sorted(numbers) == list(range(1, 13))
    for number, factor in numbers.items():  # each replica serves what the other stored
        for live in replicas:
            answer = requests.post(f"{live.url}/models/crossing/{number}/predict", json={"instances": [PROBE_ROW]}, timeout=30)
            assert answer.json()["predictions"][0] == pytest.approx(expected_prediction(factor))
