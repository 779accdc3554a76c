"""Metrics shared across processes through one small file each: sums, retained counts, dead processes."""
import multiprocessing
import os
import threading

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from registry.process import metric_files

FORK = multiprocessing.get_context("fork")


@pytest.fixture
def shared(tmp_path):
    """Metrics of a registry of the test, shared through files in a fresh directory."""
    registry = CollectorRegistry()
    families = {
        "loaded": Gauge("registry_model_loaded", "held", ["model", "version"], registry=registry),
        "answers": Counter("registry_predictions_total", "answers", ["model", "version"], registry=registry),
        "seconds": Histogram("registry_predict_seconds", "time", ["model"], buckets=(0.1, 1.0), registry=registry),
        "registry": registry,
    }
    metric_files.across_processes(sum=[families["loaded"]])
    return str(tmp_path), families


def flush(directory: str, families: dict) -> None:
    metric_files.flush(directory, families["registry"])


def let_go(families: dict) -> None:
    """This process lets m/1 go (its counts retained, its series removed)."""
    metric_files.retain("m", "1", lambda: families["answers"].remove("m", "1"), registry=families["registry"])


def in_another_process(work) -> int:
    """Run ``work`` in a forked process that then exits (its file stays, as a live worker's does); its pid."""
    process = FORK.Process(target=work)
    process.start()
    process.join(timeout=30)
    assert process.exitcode == 0
    return process.pid


def sample(directory: str, name: str, **labels) -> float | None:
    for family in metric_files.SharedFiles(directory).collect():
        for found in family.samples:
            if found.name == name and found.labels == labels:
                return found.value
    return None


def test_every_processes_counts_add_up_and_a_forked_one_starts_from_zero(shared):
    directory, families = shared
    families["answers"].labels("m", "1").inc(3)
    families["seconds"].labels("m").observe(0.05)
    flush(directory, families)

    def worker():
        families["answers"].labels("m", "1").inc(2)  # on top of zero, not of the parent's 3
        families["seconds"].labels("m").observe(0.5)
        flush(directory, families)

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
        flush(directory, families)

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
    flush(directory, families)  # this process shares its metrics (a Flusher flushes as it starts)
    holder_pid = another_holder(directory, families, 2)
    families["answers"].labels("m", "1").inc(3)
    let_go(families)  # this process lets version 1 go
    flush(directory, families)
    assert sample(directory, "registry_predictions_total", model="m", version="1") == 5  # never goes down

    families["answers"].labels("m", "1").inc(1)  # served here again: counts on from the retained 3
    flush(directory, families)
    assert sample(directory, "registry_predictions_total", model="m", version="1") == 6

    let_go(families)
    metric_files.retire(directory, holder_pid)  # nobody holds version 1 any more
    flush(directory, families)
    # This process dropped its 4; the dead holder's 2 stay (a scrape shows them only while held).
    assert sample(directory, "registry_predictions_total", model="m", version="1") == 2


def test_an_unchanged_process_does_not_rewrite_its_file(shared):
    directory, families = shared
    families["answers"].labels("m", "1").inc()
    flush(directory, families)
    path = os.path.join(directory, f"{os.getpid()}.metrics")
    written = os.stat(path).st_ino
    flush(directory, families)
    assert os.stat(path).st_ino == written
    families["answers"].labels("m", "1").inc()
    flush(directory, families)
    assert os.stat(path).st_ino != written


def test_flushes_from_many_threads_at_once_leave_a_whole_file(shared):
    directory, families = shared
    counter = families["answers"].labels("m", "1")

    def flush_often():
        for _ in range(200):
            counter.inc()
            flush(directory, families)

    threads = [threading.Thread(target=flush_often) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    flush(directory, families)
    assert sample(directory, "registry_predictions_total", model="m", version="1") == 1600
    assert [p for p in os.listdir(directory) if p.endswith(".tmp")] == []


def test_a_forked_process_that_lets_a_version_go_counts_it_again_from_zero(shared):
    directory, families = shared
    families["answers"].labels("m", "1").inc(3)  # the parent's: in the parent's file
    families["loaded"].labels("m", "1").set(1)  # held by the parent: the child's let-go count is kept
    flush(directory, families)

    def worker():
        families["answers"].labels("m", "1").inc(1)
        let_go(families)
        families["answers"].labels("m", "1").inc(2)  # a new series: 0 + 2, not 2 - the parent's 3
        flush(directory, families)

    in_another_process(worker)
    assert sample(directory, "registry_predictions_total", model="m", version="1") == 3 + 1 + 2


def test_what_the_scrape_shows_adds_up_every_process_with_prometheus_clients_exposition(shared):
    directory, families = shared
    families["answers"].labels("m", "1").inc(2)
    families["loaded"].labels("m", "1").set(1)
    flush(directory, families)
    another_holder(directory, families, 5)
    scrape = CollectorRegistry()
    scrape.register(metric_files.SharedFiles(directory))
    text = generate_latest(scrape).decode()
    assert 'registry_predictions_total{model="m",version="1"} 7.0' in text
    assert 'registry_model_loaded{model="m",version="1"} 2.0' in text
    assert "_created" not in text  # a time of one process, not a sum


def test_the_samples_prometheus_client_collects_are_the_shapes_the_files_add_up():
    # The files hold what CollectorRegistry.collect() yields, and collect() adds them up by sample name
    # and label set: cumulative buckets and counts of each process add up to the host's. This pins those
    # shapes for the pinned release; an upgrade that renames a suffix, drops the cumulative buckets or
    # changes the label sets fails here rather than summing wrong figures.
    registry = CollectorRegistry()
    Counter("c_total", "a counter", ["model"], registry=registry).labels("m").inc(2)
    Gauge("g", "a gauge", ["model", "version"], registry=registry).labels("m", "1").set(4)
    histogram = Histogram("h", "a histogram", ["model"], buckets=(0.1, 1.0), registry=registry).labels("m")
    histogram.observe(0.05)
    histogram.observe(0.5)
    collected = [(metric.name, metric.type, metric.documentation,
                  [(sample.name, sample.labels, sample.value if not sample.name.endswith("_created") else "time")
                   for sample in metric.samples])
                 for metric in registry.collect()]
    assert collected == [
        ("c", "counter", "a counter", [("c_total", {"model": "m"}, 2.0), ("c_created", {"model": "m"}, "time")]),
        ("g", "gauge", "a gauge", [("g", {"model": "m", "version": "1"}, 4.0)]),
        ("h", "histogram", "a histogram", [
            ("h_bucket", {"model": "m", "le": "0.1"}, 1.0),
            ("h_bucket", {"model": "m", "le": "1.0"}, 2.0),
            ("h_bucket", {"model": "m", "le": "+Inf"}, 2.0),
            ("h_count", {"model": "m"}, 2.0),
            ("h_sum", {"model": "m"}, pytest.approx(0.55)),
            ("h_created", {"model": "m"}, "time"),
        ]),
    ]


def test_one_process_file_reads_back_as_prometheus_client_writes_its_registry(shared):
    directory, families = shared
    families["answers"].labels("m", "1").inc(2)
    families["loaded"].labels("m", "1").set(1)
    families["seconds"].labels("m").observe(0.5)
    flush(directory, families)
    scrape = CollectorRegistry()
    scrape.register(metric_files.SharedFiles(directory))
    own = [line for line in generate_latest(families["registry"]).splitlines() if b"_created" not in line]
    assert generate_latest(scrape).splitlines() == own
