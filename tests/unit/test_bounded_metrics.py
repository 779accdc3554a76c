"""Metrics bounded by what is served now: series of a version leave with it."""
import uuid

from prometheus_client import REGISTRY
from prometheus_client.metrics_core import Metric

from registry.telemetry import PREDICTIONS, ServedOnly, hold, let_go, series


def model_name() -> str:
    return f"bounded-{uuid.uuid4().hex[:8]}"


def predictions(model: str, version: str) -> float | None:
    return REGISTRY.get_sample_value("registry_predictions_total", {"model": model, "version": version, "status": "200"})


def loaded(model: str, version: str) -> float | None:
    return REGISTRY.get_sample_value("registry_model_loaded", {"model": model, "version": version})


def test_a_version_held_by_two_servers_keeps_its_series_until_both_let_go():
    model = model_name()
    hold(model, "1")
    hold(model, "1")
    series(PREDICTIONS, model=model, version="1", status="200").inc()

    let_go(model, "1")
    assert (predictions(model, "1"), loaded(model, "1")) == (1.0, 1.0)

    let_go(model, "1")
    assert predictions(model, "1") is None
    assert not loaded(model, "1")  # gone here; 0 in a worker's multiprocess file


def test_a_version_served_again_counts_from_where_this_process_is_now():
    model = model_name()
    hold(model, "2")
    series(PREDICTIONS, model=model, version="2", status="200").inc()
    let_go(model, "2")
    hold(model, "2")
    series(PREDICTIONS, model=model, version="2", status="200").inc()
    assert predictions(model, "2") == 1.0


class Families:
    def __init__(self, *families):
        self.families = families

    def collect(self):
        return iter(self.families)


def family(name: str, kind: str, *samples: tuple[dict, float]) -> Metric:
    metric = Metric(name, "help", kind)
    for labels, value in samples:
        metric.add_sample(name, labels, value)
    return metric


def test_a_scrape_leaves_out_every_series_of_a_version_no_live_worker_holds():
    source = Families(
        family("registry_model_loaded", "gauge", ({"model": "m", "version": "1"}, 1.0), ({"model": "m", "version": "2"}, 0.0)),
        family("registry_predictions_total", "counter",
               ({"model": "m", "version": "1", "status": "200"}, 5.0), ({"model": "m", "version": "2", "status": "200"}, 9.0)),
        family("registry_model_loads_total", "counter", ({"model": "m"}, 2.0)),
        family("python_info", "gauge", ({"version": "3.11.7"}, 1.0)),
    )
    kept = {(f.name, tuple(sorted(s.labels.items())), s.value) for f in ServedOnly(source).collect() for s in f.samples}
    assert kept == {
        ("registry_model_loaded", (("model", "m"), ("version", "1")), 1.0),
        ("registry_predictions_total", (("model", "m"), ("status", "200"), ("version", "1")), 5.0),
        ("registry_model_loads_total", (("model", "m"),), 2.0),
        ("python_info", (("version", "3.11.7"),), 1.0),
    }
