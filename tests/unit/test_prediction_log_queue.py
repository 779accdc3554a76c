"""The prediction log's queue: the prediction path never waits on it, a full queue drops and counts,
and only the model's share of answers (but every error) is kept."""
import threading
import time
from contextlib import contextmanager
from datetime import datetime, timezone

from prometheus_client import REGISTRY

from registry.monitoring.log_queue import Entry
from registry.monitoring.log_settings import LogSettings
from registry.monitoring.prediction_log import PredictionLog


def entry(status: int = 200, model: str = "m") -> Entry:
    return Entry("r", model, 1, "production", "primary", None, {"predictions": [1]}, 1.0, status,
                 datetime.now(timezone.utc))


def dropped() -> float:
    return REGISTRY.get_sample_value("registry_prediction_log_dropped_total") or 0.0


def test_a_full_queue_drops_and_counts_without_waiting():
    gate = threading.Event()

    @contextmanager
    def stuck_database():
        gate.wait(10)  # the writer's database does not answer
        yield

    log = PredictionLog(LogSettings(default_sample=1.0, retention_seconds=86_400, capacity=2), stuck_database)
    log.start()
    before = dropped()
    started = time.perf_counter()
    for _ in range(10):
        log.offer(entry())
    took = time.perf_counter() - started
    gate.set()
    log.stop()
    # The writer holds at most one batch while the queue holds two; everything else is counted as dropped.
    assert dropped() - before >= 7
    assert took < 1.0  # ten offers against a database that does not answer: none of them waited on it


def test_answers_are_kept_by_share_and_errors_always():
    draws = iter([0.05, 0.5, 0.95])
    log = PredictionLog(LogSettings(default_sample=0.1, retention_seconds=86_400), lambda: None, chance=lambda: next(draws))
    kept = [log.keeps("m", status) for status in (200, 200, 200, 422, 503)]
    assert kept == [True, False, False, True, True]  # 0.05 < 0.1 drawn; 0.5 and 0.95 not; errors without a draw


def test_a_share_of_zero_keeps_only_errors_and_one_keeps_all():
    log = PredictionLog(LogSettings(default_sample=0.0, retention_seconds=86_400), lambda: None, chance=lambda: 0.0)
    log.shares.own = {"all": 1.0}
    assert [log.keeps("m", 200), log.keeps("all", 200), log.keeps("m", 500)] == [False, True, True]
