"""Writers racing each other through real threads, on the backend under test."""
import random
import threading
from concurrent.futures import ThreadPoolExecutor

from sklearn.linear_model import LinearRegression

from tests.helpers import regression_data, upload

THREADS = 8


def _race(app, calls):
    """Run every call at once, each in its own thread with its own test client."""
    barrier = threading.Barrier(len(calls))

    def run(call):
        client = app.test_client()
        barrier.wait()
        return call(client)

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(run, calls))


def _models(count, seed=0):
    X, y = regression_data(seed=seed)
    return [LinearRegression().fit(X, y * (i + 1)) for i in range(count)]


def _chain_is_consistent(events):
    """Oldest first: every move starts where the previous one ended."""
    return all(after["from_version"] == before["to_version"] for before, after in zip(events, events[1:]))


def test_concurrent_uploads_to_a_new_model_get_consecutive_versions(app, admin):
    calls = [lambda c, m=m: upload(c, admin, "fresh", m) for m in _models(THREADS)]
    responses = _race(app, calls)
    assert [r.status_code for r in responses] == [201] * THREADS
    assert sorted(r.get_json()["version"] for r in responses) == list(range(1, THREADS + 1))
    assert app.test_client().get("/models/fresh").get_json()["version_count"] == THREADS


def test_concurrent_uploads_of_the_same_bytes_make_one_version(app, admin):
    model = _models(1)[0]
    responses = _race(app, [lambda c: upload(c, admin, "same", model) for _ in range(THREADS)])
    assert sorted(r.status_code for r in responses) == [200] * (THREADS - 1) + [201]
    assert {r.get_json()["version"] for r in responses} == {1}


def test_racing_first_promotes_of_an_alias_leave_exactly_one_target_and_a_chain(app, admin):
    client = app.test_client()
    for model in _models(4):
        assert upload(client, admin, "racer", model).status_code == 201
    promote = lambda c, v: c.post(f"/models/racer/versions/{v}/promote", json={"alias": "canary"}, headers=admin)
    responses = _race(app, [lambda c, v=v: promote(c, v) for v in [1, 2, 3, 4] * 2])
    assert {r.status_code for r in responses} == {200}
    events = client.get("/models/racer/history?alias=canary").get_json()["items"][::-1]
    assert events[0]["from_version"] is None
    assert sum(e["from_version"] is None for e in events) == 1
    assert _chain_is_consistent(events)
    assert client.get("/models/racer/aliases").get_json()["canary"] == events[-1]["to_version"]


def test_promotes_and_rollbacks_racing_keep_the_history_a_chain(app, admin):
    client = app.test_client()
    for model in _models(5):
        assert upload(client, admin, "mixed", model).status_code == 201
    assert client.post("/models/mixed/versions/1/promote", json={}, headers=admin).status_code == 200
    rng = random.Random(7)

    def step(c):
        if rng.random() < 0.4:
            return c.post("/models/mixed/rollback", json={}, headers=admin)
        return c.post(f"/models/mixed/versions/{rng.randint(1, 5)}/promote", json={}, headers=admin)

    responses = _race(app, [step] * (THREADS * 2))
    assert {r.status_code for r in responses} <= {200, 409}
    events = client.get("/models/mixed/history?per_page=500").get_json()["items"][::-1]
    assert _chain_is_consistent(events)
    assert client.get("/models/mixed/aliases").get_json()["production"] == events[-1]["to_version"]
