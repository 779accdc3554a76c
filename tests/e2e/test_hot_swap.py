"""Hot swap under live traffic, against a real gunicorn with three workers."""
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from bench.harness.models import PROBE_ROW, expected_prediction, scaled_sum, upload
from bench.harness.traffic import CLOCK_SLACK_SECONDS, Load, allowed_versions, move, run_moves

CLIENT_THREADS = 6
PINNED_THREADS = 2
MOVES = [("promote", 2), ("promote", 3), ("rollback", None), ("promote", 4), ("rollback", None),
         ("rollback", None), ("promote", 3), ("promote", 2), ("rollback", None), ("promote", 4)]


@pytest.fixture(scope="module")
def swap_model(live_registry):
    """A model with versions 1..4, each predicting ``k * sum(x)``; production starts at v1."""
    name = "swap"
    for factor in (1, 2, 3, 4):
        response = upload(live_registry, name, scaled_sum(factor))
        assert response.status_code == 201, response.text
    move(live_registry, "promote", name, 1)
    return name


def test_promotes_and_rollbacks_under_load_fail_no_request_and_follow_the_alias(live_registry, swap_model):
    name, window = swap_model, live_registry.refresh_seconds
    alias_url = f"{live_registry.url}/models/{name}/production/predict"
    pinned_url = f"{live_registry.url}/models/{name}/1/predict"
    # a pause longer than the window between moves makes every move observable
    with Load([alias_url], CLIENT_THREADS) as alias_load, Load([pinned_url], PINNED_THREADS) as pinned_load:
        moves = run_moves(live_registry, name, MOVES, pause=window * 1.5)
    alias_answers, pinned_answers = alias_load.answers, pinned_load.answers

    assert len(moves) == 10
    assert len(alias_answers) > 200 and len(pinned_answers) > 50
    failed = [a for a in alias_answers + pinned_answers if a.status != 200]
    assert failed == []
    for answer in alias_answers + pinned_answers:
        assert answer.header_version == str(answer.version)
        assert answer.prediction == pytest.approx(expected_prediction(answer.version))
    stale = [a for a in alias_answers if a.version not in allowed_versions(a, 1, moves, window)]
    assert stale == []
    assert {a.version for a in pinned_answers} == {1}
    # the last move's version is what every worker serves once the window has passed
    settled = [a for a in alias_answers if a.started > moves[-1].returned + window + CLOCK_SLACK_SECONDS]
    assert settled and {a.version for a in settled} == {moves[-1].version}


def test_every_worker_serves_a_promoted_version_within_the_refresh_window(live_registry, swap_model):
    current = requests.get(f"{live_registry.url}/models/{swap_model}/aliases", timeout=10).json()["production"]
    target = 1 if current != 1 else 2
    move(live_registry, "promote", swap_model, target)
    returned = time.monotonic()
    time.sleep(live_registry.refresh_seconds + CLOCK_SLACK_SECONDS)
    assert time.monotonic() - returned >= live_registry.refresh_seconds
    # fresh connections: the master hands them to whichever worker accepts first, so many reach each worker
    with ThreadPoolExecutor(max_workers=6) as pool:
        versions = list(pool.map(
            lambda _: requests.post(
                f"{live_registry.url}/models/{swap_model}/production/predict",
                json={"instances": [PROBE_ROW]}, timeout=30, headers={"Connection": "close"},
            ).json()["version"],
            range(60),
        ))
    assert set(versions) == {target}


def test_registry_reads_show_a_move_as_soon_as_it_returns(live_registry, swap_model):
    current = requests.get(f"{live_registry.url}/models/{swap_model}/aliases", timeout=10).json()["production"]
    target = 3 if current != 3 else 4
    move(live_registry, "promote", swap_model, target)
    for _ in range(12):  # several requests, so several workers answer
        assert requests.get(f"{live_registry.url}/models/{swap_model}/aliases", timeout=10).json()["production"] == target
        assert requests.get(f"{live_registry.url}/models/{swap_model}/versions/production", timeout=10).json()["version"] == target


def test_concurrent_promotes_leave_one_consistent_history_chain(live_registry):
    name = "race"
    for factor in range(1, 6):
        assert upload(live_registry, name, scaled_sum(factor + 10)).status_code == 201

    def promote(version):
        return requests.post(
            f"{live_registry.url}/models/{name}/versions/{version}/promote", json={"alias": "staging"},
            headers=live_registry.headers, timeout=60,
        )

    with ThreadPoolExecutor(max_workers=8) as pool:
        responses = list(pool.map(promote, [1, 2, 3, 4, 5] * 6))
    assert {r.status_code for r in responses} == {200}

    events = requests.get(f"{live_registry.url}/models/{name}/history?alias=staging&per_page=500", timeout=10).json()["items"]
    events.reverse()  # oldest first
    assert events[0]["from_version"] is None
    for before, after in zip(events, events[1:]):
        assert after["from_version"] == before["to_version"]
        assert after["from_version"] != after["to_version"]
    aliases = requests.get(f"{live_registry.url}/models/{name}/aliases", timeout=10).json()
    assert aliases["staging"] == events[-1]["to_version"]
    moved = [r.json() for r in responses if r.json()["event_id"] is not None]
    assert sorted(m["event_id"] for m in moved) == sorted(e["id"] for e in events)


def test_workers_moving_different_models_at_once_keep_one_ledger_chain(live_registry):
    names = [f"ledger-{i}" for i in range(4)]
    for name in names:
        for factor in (1, 2):
            assert upload(live_registry, name, scaled_sum(factor + 20)).status_code == 201
    before = requests.get(f"{live_registry.url}/audit/verify", headers=live_registry.headers, timeout=60).json()

    def promote(move):
        name, version = move
        return requests.post(f"{live_registry.url}/models/{name}/versions/{version}/promote", json={"alias": "ledger"},
                             headers=live_registry.headers, timeout=60)

    with ThreadPoolExecutor(max_workers=8) as pool:  # the server's three workers take them at once
        responses = list(pool.map(promote, [(name, 1 + i % 2) for i in range(6) for name in names]))
    assert {r.status_code for r in responses} == {200}

    verdict = requests.get(f"{live_registry.url}/audit/verify", headers=live_registry.headers, timeout=60).json()
    assert verdict["first_broken"] is None
    moved = [r for r in responses if r.json()["event_id"] is not None]  # (promoting the current version writes none)
    assert verdict["entries"] == before["entries"] + len(moved)


def test_twelve_concurrent_uploads_get_versions_one_to_twelve(live_registry):
    models = [scaled_sum(100 + i) for i in range(12)]
    with ThreadPoolExecutor(max_workers=12) as pool:
        responses = list(pool.map(lambda m: upload(live_registry, "concurrent", m), models))
    assert [r.status_code for r in responses] == [201] * 12
    assert sorted(r.json()["version"] for r in responses) == list(range(1, 13))


def test_a_revoked_token_stops_working_on_every_worker_at_once(live_registry):
    created = requests.post(
        f"{live_registry.url}/tokens", json={"name": "short-lived", "role": "ci"}, headers=live_registry.headers, timeout=10
    )
    assert created.status_code == 201
    token_headers = {"Authorization": f"Bearer {created.json()['token']}"}
    assert upload(live_registry, "revocation", scaled_sum(7), headers=token_headers).status_code == 201

    revoked = requests.delete(f"{live_registry.url}/tokens/short-lived", headers=live_registry.headers, timeout=10)
    assert revoked.status_code == 204
    statuses = {
        upload(live_registry, "revocation", scaled_sum(8 + i), headers=token_headers).status_code for i in range(12)
    }
    assert statuses == {401}
    versions = requests.get(f"{live_registry.url}/models/revocation/versions", timeout=10).json()
    assert versions["total"] == 1
