"""Metrics shared across processes through one small file each: sums, retained counts, dead processes."""
import multiprocessing
import os
import threading

import prometheus_client.values
import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from registry.process import metric_files

FORK = multiprocessing.get_context("fork")


@pytest.fixture
def shared(monkeypatch, tmp_path):
    """Metrics built in the test are shared through files in a fresh directory (restored afterwards)."""
    monkeypatch.setattr(prometheus_client.values, "ValueClass", prometheus_client.values.ValueClass)
    metric_files.install()
    registry = CollectorRegistry()
    families = {
        "loaded": Gauge("registry_model_loaded", "held", ["model", "version"], registry=registry,
                        multiprocess_mode="livesum"),
        "answers": Counter("registry_predictions_total", "answers", ["model", "version"], registry=registry),
        "seconds": Histogram("registry_predict_seconds", "time", ["model"], buckets=(0.1, 1.0), registry=registry),
    }
    return str(tmp_path), families


def in_another_process(work) -> int:
    """Run ``work`` in a forked process that then exits (its file stays, as a live worker's does); its pid."""
    process = FORK.Process(target=work)
    process.start()
    process.join(timeout=30)
    assert process.exitcode == 0
    return process.pid


def sample(directory: str, name: str, **labels) -> float | None:
    for family in metric_files.collect(directory):
        for found in family.samples:
            if found.name == name and found.labels == labels:
                return found.value
    return None


def test_every_processes_counts_add_up_and_a_forked_one_starts_from_zero(shared):
    directory, families = shared
    families["answers"].labels("m", "1").inc(3)
    families["seconds"].labels("m").observe(0.05)
    metric_files.flush(directory)

    def worker():
        families["answers"].labels("m", "1").inc(2)  # on top of zero, not of the parent's 3
        families["seconds"].labels("m").observe(0.5)
        metric_files.flush(directory)

    in_another_process(worker)
    assert sample(directory, "registry_predictions_total", model="m", version="1") == 5
    assert sample(directory, "registry_predict_seconds_bucket", model="m", le="0.1") == 1
    assert sample(directory, "registry_predict_seconds_bucket", model="m", le="1.0") == 2
    assert sample(directory, "registry_predict_seconds_bucket", model="m", le="+Inf") == 2
    assert sample(directory, "registry_predict_seconds_count", model="m") == 2
    assert sample(directory, "registry_predict_seconds_sum", model="m") == pytest.approx(0.55)


def another_holder(directory: str, families: dict, answers: int) -> int:
    """A forked process that holds m/1 and counted ``answers`` of it, then exits; its pid."""

    def holder():
        families["loaded"].labels("m", "1").set(1)
        families["answers"].labels("m", "1").inc(answers)
        metric_files.flush(directory)

    return in_another_process(holder)


def test_a_dead_processes_counts_stay_and_its_gauges_leave(shared):
    directory, families = shared
    pid = another_holder(directory, families, 4)
    assert sample(directory, "registry_model_loaded", model="m", version="1") == 1

    metric_files.retire(directory, pid)
    assert sample(directory, "registry_model_loaded", model="m", version="1") is None
    assert sample(directory, "registry_predictions_total", model="m", version="1") == 4
    assert not os.path.exists(os.path.join(directory, f"{pid}.metrics"))


def test_a_let_go_version_keeps_its_count_while_another_process_holds_it(shared):
    directory, families = shared
    holder_pid = another_holder(directory, families, 2)
    families["answers"].labels("m", "1").inc(3)
    metric_files.retain("m", "1")  # this process lets version 1 go
    families["answers"].remove("m", "1")
    metric_files.flush(directory)
    assert sample(directory, "registry_predictions_total", model="m", version="1") == 5  # never goes down

    families["answers"].labels("m", "1").inc(1)  # served here again: counts on from the retained 3
    metric_files.flush(directory)
    assert sample(directory, "registry_predictions_total", model="m", version="1") == 6

    metric_files.retain("m", "1")
    families["answers"].remove("m", "1")
    metric_files.retire(directory, holder_pid)  # nobody holds version 1 any more
    metric_files.flush(directory)
    # This process dropped its 4; the dead holder's 2 stay (a scrape shows them only while held).
    assert sample(directory, "registry_predictions_total", model="m", version="1") == 2


def test_an_unchanged_process_does_not_rewrite_its_file(shared):
    directory, families = shared
    families["answers"].labels("m", "1").inc()
    metric_files.flush(directory)
    path = os.path.join(directory, f"{os.getpid()}.metrics")
    written = os.stat(path).st_ino
    metric_files.flush(directory)
    assert os.stat(path).st_ino == written
    families["answers"].labels("m", "1").inc()
    metric_files.flush(directory)
    assert os.stat(path).st_ino != written


def test_flushes_from_many_threads_at_once_leave_a_whole_file(shared):
    directory, families = shared
    counter = families["answers"].labels("m", "1")

    def flush_often():
        for _ in range(200):
            counter.inc()
            metric_files.flush(directory)

    threads = [threading.Thread(target=flush_often) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    metric_files.flush(directory)
    assert sample(directory, "registry_predictions_total", model="m", version="1") == 1600
    assert [p for p in os.listdir(directory) if p.endswith(".tmp")] == []


def test_the_value_hook_this_module_uses_is_the_one_prometheus_client_reads(shared):
    # prometheus_client has no public way to keep a series' value elsewhere: its own multiprocess
    # mode swaps ``values.ValueClass`` as install() does. This pins that hook for the pinned release:
    # every kind of metric built after install() keeps its values in a SharedValue, and an upgrade of
    # prometheus_client that stops reading the hook fails here rather than summing nothing.
    _, families = shared
    families["answers"].labels(model="m", version="1").inc()
    families["loaded"].labels(model="m", version="1").set(1)
    families["seconds"].labels(model="m").observe(0.5)
    held = [families["answers"].labels(model="m", version="1")._value,
            families["loaded"].labels(model="m", version="1")._value,
            families["seconds"].labels(model="m")._sum]
    assert all(isinstance(value, metric_files.SharedValue) for value in held)
    assert [value.get() for value in held] == [1.0, 1.0, 0.5]
