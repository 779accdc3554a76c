"""Each worker's loaded versions within MODEL_MEMORY_MB, sized by what they hold: with the real loader,
versions requested by number are evicted least recently used first, what an alias serves never is,
and a budget the aliased versions alone exceed is said in /readyz and the log."""
import pytest
from prometheus_client import REGISTRY

from tests.helpers import scaled_sum, upload_ok

ROW = {"instances": [[1.0, 1.0, 1.0]]}
MODEL_BYTES = 408  # about what one of these small regressors holds as served: its arrays and the objects around them


def loads() -> float:
    return REGISTRY.get_sample_value("registry_model_loads_total", {"model": "m"}) or 0.0


@pytest.fixture
def small_budget(build_app, ci, admin):
    """An app whose workers may hold about two of these models, with versions 1–4 uploaded and 1 in production."""
    app = build_app(MODEL_MEMORY_MB=2.5 * MODEL_BYTES / 2**20)
    client = app.test_client()
    for factor in (1, 2, 3, 4):
        upload_ok(client, ci, "m", scaled_sum(factor))
    assert client.post("/models/m/versions/1/promote", json={}, headers=admin).status_code == 200
    return app


def predict(client, ref):
    answer = client.post(f"/models/m/{ref}/predict", json=ROW)
    assert answer.status_code == 200, answer.get_json()
    return answer.get_json()["predictions"][0]


def test_versions_by_number_are_evicted_least_recently_used_and_every_answer_stays_right(small_budget):
    client = small_budget.test_client()
    models = small_budget.extensions["model_registry"].runtime.models
    assert predict(client, "production") == pytest.approx(3.0)
    for number in (2, 3, 4, 2, 3, 4):
        assert predict(client, str(number)) == pytest.approx(3.0 * number)  # a miss costs a load, never an error

    cached = models.cache.keys()
    assert ("m", 1) in cached  # production: pinned
    assert len(cached) == 2 and models.cache.held_bytes <= models.cache.budget_bytes + MODEL_BYTES
    before = loads()
    predict(client, "4")  # the one just used: still loaded
    assert loads() == before
    predict(client, "2")  # let go long ago: loaded again
    assert loads() == before + 1


def test_sizes_are_measured_and_shown_in_the_metrics(small_budget):
    client = small_budget.test_client()
    predict(client, "production")
    predict(client, "2")

    cache = small_budget.extensions["model_registry"].runtime.models.cache
    sizes = [cache.peek(key).size_bytes for key in cache.keys()]
    held = cache.held_bytes
    assert len(sizes) == 2 and all(0.5 * MODEL_BYTES < size < 2 * MODEL_BYTES for size in sizes)
    assert held == sum(sizes)
    metrics = client.get("/metrics").get_data(as_text=True)
    assert f"registry_model_cache_bytes {float(held)}" in metrics
    assert f"registry_model_cache_budget_bytes {float(int(2.5 * MODEL_BYTES))}" in metrics


def test_aliased_versions_over_the_budget_stay_served_and_readyz_says_so(build_app, ci, admin):
    app = build_app(MODEL_MEMORY_MB=0.5 * MODEL_BYTES / 2**20)
    client = app.test_client()
    for factor in (1, 2, 3):
        upload_ok(client, ci, "m", scaled_sum(factor))
        assert client.post(f"/models/m/versions/{factor}/promote", json={"alias": f"a{factor}"},
                           headers=admin).status_code == 200
    assert [predict(client, f"a{n}") for n in (1, 2, 3)] == pytest.approx([3.0, 6.0, 9.0])

    ready = client.get("/readyz").get_json()
    assert ready["status"] == "ready"
    assert any("MODEL_MEMORY_MB" in warning for warning in ready["warnings"])
    assert app.extensions["model_registry"].runtime.models.cache.keys() >= {("m", 1), ("m", 2), ("m", 3)}
