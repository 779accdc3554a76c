"""Hot swap under live traffic, against a real gunicorn with three workers."""
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest
import requests

from tests.e2e.models import PROBE_ROW, expected_prediction, scaled_sum_model, upload

CLIENT_THREADS = 6
PINNED_THREADS = 2
# Request and move times are taken on this process's clock; this absorbs scheduling noise.
CLOCK_SLACK_SECONDS = 0.05


@dataclass
class Answer:
    started: float
    finished: float
    status: int
    version: int | None
    header_version: str | None
    prediction: float | None


@dataclass
class Move:
    started: float
    returned: float
    version: int


def _predict_loop(url: str, stop: threading.Event, answers: list) -> None:
    session = requests.Session()
    while not stop.is_set():
        started = time.monotonic()
        try:
            response = session.post(url, json={"instances": [PROBE_ROW]}, timeout=30)
        except requests.RequestException:
            answers.append(Answer(started, time.monotonic(), 0, None, None, None))
            continue
        body = response.json() if response.status_code == 200 else {}
        answers.append(
            Answer(
                started,
                time.monotonic(),
                response.status_code,
                body.get("version"),
                response.headers.get("X-Model-Version"),
                (body.get("predictions") or [None])[0],
            )
        )


def _allowed_versions(answer: Answer, initial: int, moves: list[Move], window: float) -> set[int]:
    """Versions the alias pointed at some time during [start - window, finish] of a request.

    A move may take effect anywhere between its call and its return, so each target counts from
    its call until the next move returns.
    """
    lo, hi = answer.started - window - CLOCK_SLACK_SECONDS, answer.finished + CLOCK_SLACK_SECONDS
    spans = [(float("-inf"), moves[0].returned if moves else float("inf"), initial)]
    for i, move in enumerate(moves):
        until = moves[i + 1].returned if i + 1 < len(moves) else float("inf")
        spans.append((move.started, until, move.version))
    return {version for begin, end, version in spans if begin <= hi and end >= lo}


@pytest.fixture(scope="module")
def swap_model(live_registry):
    """A model with versions 1..4, each predicting ``k * sum(x)``; production starts at v1."""
    name = "swap"
    for factor in (1, 2, 3, 4):
        response = upload(live_registry, name, scaled_sum_model(factor))
        assert response.status_code == 201, response.text
    _move(live_registry, "promote", name, 1)
    return name


def _move(live, action: str, name: str, version: int | None = None) -> dict:
    if action == "promote":
        response = requests.post(
            f"{live.url}/models/{name}/versions/{version}/promote", json={"reason": "e2e"}, headers=live.headers, timeout=60
        )
    else:
        response = requests.post(f"{live.url}/models/{name}/rollback", json={"reason": "e2e"}, headers=live.headers, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()


def test_promotes_and_rollbacks_under_load_fail_no_request_and_follow_the_alias(live_registry, swap_model):
    name, window = swap_model, live_registry.refresh_seconds
    alias_url = f"{live_registry.url}/models/{name}/production/predict"
    pinned_url = f"{live_registry.url}/models/{name}/1/predict"
    alias_answers, pinned_answers, moves = [], [], []
    stop = threading.Event()
    threads = [threading.Thread(target=_predict_loop, args=(alias_url, stop, alias_answers)) for _ in range(CLIENT_THREADS)]
    threads += [threading.Thread(target=_predict_loop, args=(pinned_url, stop, pinned_answers)) for _ in range(PINNED_THREADS)]
    for thread in threads:
        thread.start()
    plan = [("promote", 2), ("promote", 3), ("rollback", None), ("promote", 4), ("rollback", None),
            ("rollback", None), ("promote", 3), ("promote", 2), ("rollback", None), ("promote", 4)]
    try:
        for action, version in plan:
            time.sleep(window * 1.5)  # give every worker time to follow, so each move is observable
            started = time.monotonic()
            moved = _move(live_registry, action, name, version)
            moves.append(Move(started, time.monotonic(), moved["version"]))
        time.sleep(window * 1.5)
    finally:
        stop.set()
        for thread in threads:
            thread.join()

    assert len(moves) == 10
    assert len(alias_answers) > 200 and len(pinned_answers) > 50
    failed = [a for a in alias_answers + pinned_answers if a.status != 200]
    assert failed == []
    for answer in alias_answers + pinned_answers:
        assert answer.header_version == str(answer.version)
        assert answer.prediction == pytest.approx(expected_prediction(answer.version))
    stale = [a for a in alias_answers if a.version not in _allowed_versions(a, 1, moves, window)]
    assert stale == []
    assert {a.version for a in pinned_answers} == {1}
    # the last move's version is what every worker serves once the window has passed
    settled = [a for a in alias_answers if a.started > moves[-1].returned + window + CLOCK_SLACK_SECONDS]
    assert settled and {a.version for a in settled} == {moves[-1].version}


def test_every_worker_serves_a_promoted_version_within_the_refresh_window(live_registry, swap_model):
    current = requests.get(f"{live_registry.url}/models/{swap_model}/aliases", timeout=10).json()["production"]
    target = 1 if current != 1 else 2
    _move(live_registry, "promote", swap_model, target)
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
    _move(live_registry, "promote", swap_model, target)
    for _ in range(12):  # several requests, so several workers answer
        assert requests.get(f"{live_registry.url}/models/{swap_model}/aliases", timeout=10).json()["production"] == target
        assert requests.get(f"{live_registry.url}/models/{swap_model}/versions/production", timeout=10).json()["version"] == target


def test_concurrent_promotes_leave_one_consistent_history_chain(live_registry):
    name = "race"
    for factor in range(1, 6):
        assert upload(live_registry, name, scaled_sum_model(factor + 10)).status_code == 201

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


def test_twelve_concurrent_uploads_get_versions_one_to_twelve(live_registry):
    models = [scaled_sum_model(100 + i) for i in range(12)]
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
    assert upload(live_registry, "revocation", scaled_sum_model(7), headers=token_headers).status_code == 201

    revoked = requests.delete(f"{live_registry.url}/tokens/short-lived", headers=live_registry.headers, timeout=10)
    assert revoked.status_code == 204
    statuses = {
        upload(live_registry, "revocation", scaled_sum_model(8 + i), headers=token_headers).status_code for i in range(12)
    }
    assert statuses == {401}
    versions = requests.get(f"{live_registry.url}/models/revocation/versions", timeout=10).json()
    assert versions["total"] == 1
