"""The failed-authentication limit on real gunicorns: one count for all the workers of a replica, one
count for a fleet whose replicas share a Redis (the real one on this machine), and past it only bad
tokens are refused: everyone else behind the same address (a NAT, a balancer) is answered.
"""
import uuid

import pytest
import redis
import requests

from bench.harness import server
from bench.harness.models import PROBE_ROW, expected_prediction, scaled_sum, upload
from tests.databases import BACKEND, fresh_database

pytestmark = pytest.mark.skipif(
    BACKEND != "sqlite",
    reason=("the limit counts in each replica's memory or in Redis, never in the database: the SQLite pass "
            "runs it"),
)

ADMIN_TOKEN = "e2e-auth-limit-token"
LIMIT = 4
REDIS_URL = "redis://127.0.0.1:6379"
BAD = {"Authorization": "Bearer wrong"}


def _bad_token_codes(urls: list[str], count: int) -> list[int]:
    """Status codes of ``count`` bad tokens sent in turn to ``urls``, each on a new connection (so the
    kernel hands them to any worker)."""
    return [requests.get(f"{urls[i % len(urls)]}/tokens", headers=BAD, timeout=30).status_code for i in range(count)]


def _assert_everyone_else_is_answered(live, model: str) -> None:
    assert requests.get(f"{live.url}/tokens", headers=live.headers, timeout=30).status_code == 200
    assert requests.get(f"{live.url}/models", timeout=30).status_code == 200
    answer = requests.post(f"{live.url}/models/{model}/1/predict", json={"instances": [PROBE_ROW]}, timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.json()["predictions"] == [pytest.approx(expected_prediction(1))]


def test_the_workers_of_a_replica_share_one_count(tmp_path):
    with fresh_database(tmp_path) as database_url, server.running(
        database_url, tmp_path, ADMIN_TOKEN, workers=3, env={"AUTH_FAILURES_PER_MINUTE": LIMIT}
    ) as (live,):
        assert upload(live, "served", scaled_sum(1)).status_code == 201

        codes = _bad_token_codes([live.url], 4 * LIMIT)

        assert codes == [401] * LIMIT + [429] * (3 * LIMIT), codes
        _assert_everyone_else_is_answered(live, "served")


@pytest.fixture
def redis_prefix():
    """A key prefix of this run's own in the shared Redis; its keys are removed afterwards."""
    prefix = f"registry-test-{uuid.uuid4().hex}"
    yield prefix
    client = redis.Redis.from_url(REDIS_URL)
    for key in client.scan_iter(match=f"*{prefix}*"):
        client.delete(key)


def test_two_replicas_sharing_a_redis_share_one_count(tmp_path, redis_prefix):
    env = {"AUTH_FAILURES_PER_MINUTE": LIMIT, "RATELIMIT_STORAGE_URI": REDIS_URL, "RATELIMIT_KEY_PREFIX": redis_prefix}
    with fresh_database(tmp_path) as database_url, server.running(
        database_url, tmp_path, ADMIN_TOKEN, count=2, workers=2, env=env
    ) as fleet:
        assert upload(fleet[0], "served", scaled_sum(1)).status_code == 201

        codes = _bad_token_codes([live.url for live in fleet], 4 * LIMIT)

        assert codes == [401] * LIMIT + [429] * (3 * LIMIT), codes
        assert any(redis.Redis.from_url(REDIS_URL).scan_iter(match=f"*{redis_prefix}*"))  # counted there
        for live in fleet:
            _assert_everyone_else_is_answered(live, "served")
