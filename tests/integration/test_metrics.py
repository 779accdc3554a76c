"""/metrics in Prometheus text format: predictions, latency, loads, swaps and the version per alias.

Metrics live in the process-wide default registry and every test's apps share it, so each test
uses a model name of its own and reads exact values from it.
"""
import subprocess
import sys
import textwrap
import uuid

import pytest
from prometheus_client.parser import text_string_to_metric_families

from bench.harness import server
from config import BASE_DIR
from registry.process import metric_files
from tests.helpers import scaled_sum, upload

PROBE = [[1.0, 1.0, 1.0]]


def scrape(client) -> dict[tuple[str, frozenset], float]:
    """Every sample of /metrics as ``{(name, frozenset(labels.items())): value}``."""
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    assert "version=" in response.headers["Content-Type"]
    samples = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples, name, **labels) -> float | None:
    return samples.get((name, frozenset(labels.items())))


@pytest.fixture
def model(client, ci):
    """A fresh model name with versions 1 and 2, production on 1."""
    name = f"metrics-{uuid.uuid4().hex[:12]}"
    for factor in (1, 2):
        assert upload(client, ci, name, scaled_sum(factor)).status_code == 201
    response = client.post(f"/models/{name}/versions/1/promote", json={}, headers=ci)
    assert response.status_code == 200
    return name


def predict(client, path, rows=PROBE):
    return client.post(path, json={"instances": rows})


def test_predictions_are_counted_per_version_and_status_and_timed_per_model(client, model):
    for _ in range(3):
        assert predict(client, f"/models/{model}/predict").status_code == 200
    assert predict(client, f"/models/{model}/2/predict").status_code == 200

    samples = scrape(client)
    assert value(samples, "registry_predictions_total", model=model, version="1", status="200") == 3
    assert value(samples, "registry_predictions_total", model=model, version="2", status="200") == 1
    assert value(samples, "registry_predict_seconds_count", model=model) == 4
    assert value(samples, "registry_predict_seconds_sum", model=model) > 0
    assert value(samples, "registry_predict_seconds_bucket", model=model, le="+Inf") == 4
    # Without a rollout the alias's answers are not counted a second time by route.
    assert not [name for name, labels in samples if name.startswith("registry_routed") and ("model", model) in labels]


def test_refused_predictions_are_counted_under_their_status(client, model):
    assert predict(client, f"/models/{model}/predict", rows=[[1.0]]).status_code == 422
    assert predict(client, f"/models/{model}/1/predict", rows=[[1.0, None, 2.0]]).status_code == 422
    assert client.post(f"/models/{model}/1/predict", json={"instances": PROBE, "return_proba": True}).status_code == 422
    assert predict(client, f"/models/{model}/1/predict").status_code == 200

    samples = scrape(client)
    assert value(samples, "registry_predictions_total", model=model, version="1", status="422") == 3
    assert value(samples, "registry_predictions_total", model=model, version="1", status="200") == 1
    assert value(samples, "registry_predict_seconds_count", model=model) == 1


def test_requests_for_unknown_models_add_no_series(client, model):
    name = f"unknown-{uuid.uuid4().hex[:12]}"
    assert predict(client, f"/models/{name}/1/predict").status_code == 404
    assert predict(client, f"/models/{model}/9/predict").status_code == 404
    assert not [key for key in scrape(client) if ("model", name) in key[1]]


def test_loads_swaps_and_the_version_per_alias_are_exposed(client, ci, model):
    samples = scrape(client)
    # The promote loaded v1 (and scored it) before the alias moved; v2 was never needed.
    assert value(samples, "registry_model_loads_total", model=model) == 1
    assert value(samples, "registry_model_load_failures_total", model=model) in (None, 0)
    assert value(samples, "registry_alias_swaps_total", model=model, alias="production") == 1
    assert value(samples, "registry_alias_version", model=model, alias="production") == 1

    assert client.post(f"/models/{model}/versions/2/promote", json={}, headers=ci).status_code == 200
    assert client.post(f"/models/{model}/rollback", json={}, headers=ci).status_code == 200
    assert predict(client, f"/models/{model}/predict").status_code == 200

    samples = scrape(client)
    assert value(samples, "registry_model_loads_total", model=model) == 2
    assert value(samples, "registry_alias_swaps_total", model=model, alias="production") == 3
    assert value(samples, "registry_alias_version", model=model, alias="production") == 1
    assert ("registry_model_cache_evictions_total", frozenset()) in samples


def test_metrics_text_declares_every_family(client, model):
    text = client.get("/metrics").get_data(as_text=True)
    for family, kind in [
        ("registry_predictions_total", "counter"),
        ("registry_predict_seconds", "histogram"),
        ("registry_model_loads_total", "counter"),
        ("registry_model_load_failures_total", "counter"),
        ("registry_model_cache_evictions_total", "counter"),
        ("registry_alias_swaps_total", "counter"),
        ("registry_alias_version", "gauge"),
    ]:
        assert f"# TYPE {family} {kind}" in text, family


_WORKER = textwrap.dedent(
    """
    import os
    import sys

    from registry.process import metric_files
    from registry.telemetry import ALIAS_VERSION

    for version in sys.argv[1:]:
        ALIAS_VERSION.labels("m", "production").set(int(version))
    metric_files.flush(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    print(os.getpid())
    """
)


def _worker(directory, *versions) -> int:
    """Run a "worker" process (multiprocess metrics on) that serves production with ``versions`` in turn."""
    process = subprocess.run(
        [sys.executable, "-c", _WORKER, *map(str, versions)],
        env={"PROMETHEUS_MULTIPROC_DIR": str(directory), "PATH": ""},
        cwd=str(BASE_DIR),
        capture_output=True,
        text=True,
        check=True,
    )
    return int(process.stdout)


def test_across_workers_the_alias_gauge_shows_the_latest_move_not_a_dead_workers_version(tmp_path):
    old = _worker(tmp_path, 3)  # served production with v3, then died (gunicorn replaced it)
    metric_files.retire(str(tmp_path), old)
    _worker(tmp_path, 3, 2)  # a live worker followed the rollback to v2

    shown = [sample.value for family in metric_files.SharedFiles(str(tmp_path)).collect() for sample in family.samples
             if sample.name == "registry_alias_version" and sample.labels == {"model": "m", "alias": "production"}]
    assert shown == [2]


def test_v2_refusals_are_counted_under_the_status_the_client_got(client, model):
    answered = client.post(
        f"/v2/models/{model}/versions/1/infer",
        json={"inputs": [{"name": "input-0", "shape": [1, 2], "datatype": "FP64", "data": [1.0, 2.0]}]},
    )
    assert answered.status_code == 400
    samples = scrape(client)
    assert value(samples, "registry_predictions_total", model=model, version="1", status="400") == 1
    assert value(samples, "registry_predictions_total", model=model, version="1", status="422") is None


def _start(tmp_path, multiproc_dir) -> subprocess.CompletedProcess:
    """What every start does first: build the app (here for ``flask routes``) with ``PROMETHEUS_MULTIPROC_DIR``."""
    env = server.service_env(f"sqlite:///{tmp_path / 'registry.db'}", tmp_path / "artifacts", "token",
                             PROMETHEUS_MULTIPROC_DIR=multiproc_dir)
    return subprocess.run([str(server.BIN / "flask"), "--app", "wsgi", "routes"], cwd=BASE_DIR, env=env,
                          capture_output=True, text=True, timeout=300)


def test_a_missing_multiprocess_directory_is_made_at_start(tmp_path):
    directory = tmp_path / "not" / "yet"
    started = _start(tmp_path, directory)
    assert started.returncode == 0, started.stderr
    assert directory.is_dir()


def test_a_multiprocess_directory_that_cannot_be_made_stops_the_start_with_one_line(tmp_path):
    blocked = tmp_path / "a-file" / "metrics"
    (tmp_path / "a-file").write_text("")
    started = _start(tmp_path, blocked)
    assert started.returncode == 1
    assert started.stderr.splitlines() == [
        f"PROMETHEUS_MULTIPROC_DIR={blocked} cannot be created (Not a directory); "
        "point it at a writable directory, or unset it outside gunicorn"
    ]
