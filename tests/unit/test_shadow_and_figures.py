"""Shadow runs off the request path, bounded; figures counted in fixed buckets and summed."""
import threading

import numpy as np
import pytest

from registry.artifacts.signature import Signature
from registry.serving.cache import ServableModel
from registry.serving.figures import LATENCY_BUCKETS_MS, FigureBook, Tally, percentile_ms
from registry.serving.shadow import ShadowJob, ShadowRunner, compare

WAIT = 10  # seconds; a bound on waiting for an Event, so a broken test fails instead of hanging
SIGNATURE = Signature.from_dict({"features": [{"name": "x0", "dtype": "float64"}], "classes": None})


def shadow_model(task="regression") -> ServableModel:
    return ServableModel("m", 3, "sha-3", task, SIGNATURE, predictor=None)


SHADOW = shadow_model()


class GivenRows:
    """A request whose rows are the same whatever the signature."""

    def __init__(self, rows):
        self._rows = np.array(rows)

    def rows(self, signature):
        return self._rows

    def wants_probabilities(self, servable):
        return False


def job(answered, task="regression", rows=((1.0,),)) -> ShadowJob:
    shadow = SHADOW if task == "regression" else shadow_model(task)
    return ShadowJob(7, "production", shadow, request=GivenRows(rows), answered=answered)


def test_classifier_shadows_are_compared_by_label_and_regressors_by_absolute_difference():
    assert compare("classification", ["a", "b", "a"], ["a", "a", "a"]) == (2, [])
    agreed, diffs = compare("regression", [1.0, 2.0], [1.5, 0.0])
    assert agreed == 0 and diffs == pytest.approx([0.5, 2.0])


def test_a_shadow_run_is_compared_with_what_the_caller_got_and_counted():
    book = FigureBook()
    runner = ShadowRunner(book, run=lambda servable, rows: [4.0])
    runner.start()
    assert runner.offer(job([3.0]))
    assert runner.wait_idle(WAIT)
    tally = book.take_changed()[(7, "shadow", 3)]
    assert (tally.compared, tally.rows, tally.abs_diff_sum, tally.abs_diff_max) == (1, 1, 1.0, 1.0)


def test_a_shadow_that_fails_on_one_request_is_counted_as_an_error_and_the_others_are_compared():
    book, entered, release = FigureBook(), threading.Event(), threading.Event()

    def run(servable, rows):
        if not entered.is_set():
            entered.set()
            assert release.wait(WAIT)
        if (rows < 0).any():
            raise ValueError("the shadow cannot take negative rows")
        return (rows[:, 0] * 2).tolist()

    runner = ShadowRunner(book, run=run)
    runner.start()
    runner.offer(job([2.0]))  # holds the worker while the next three queue up
    assert entered.wait(WAIT)
    runner.offer(job([2.0]))
    runner.offer(job([0.0], rows=((-1.0,),)))
    runner.offer(job([5.0], rows=((2.0,),)))
    release.set()
    assert runner.wait_idle(WAIT)
    tally = book.take_changed()[(7, "shadow", 3)]
    assert (tally.errors, tally.compared, tally.rows, tally.abs_diff_sum) == (1, 3, 3, 1.0)


def test_queued_shadow_jobs_run_as_one_batch_and_each_is_compared_with_its_own_answer():
    book, entered, release, calls = FigureBook(), threading.Event(), threading.Event(), []

    def run(servable, rows):
        calls.append(len(rows))
        if len(calls) == 1:
            entered.set()
            assert release.wait(WAIT)
        return (rows[:, 0] * 10).tolist()

    runner = ShadowRunner(book, run=run)
    runner.start()
    runner.offer(job([10.0]))
    assert entered.wait(WAIT)
    runner.offer(job([10.0, 20.0], rows=((1.0,), (2.0,))))
    runner.offer(job([33.0], rows=((3.0,),)))
    release.set()
    assert runner.wait_idle(WAIT)
    assert calls == [1, 3]
    tally = book.take_changed()[(7, "shadow", 3)]
    assert (tally.compared, tally.rows, tally.abs_diff_sum, tally.abs_diff_max) == (3, 4, 3.0, 3.0)


def test_when_the_queue_is_full_a_shadow_job_is_dropped_and_counted_without_waiting():
    book, entered, release = FigureBook(), threading.Event(), threading.Event()

    def blocked(servable, rows):
        entered.set()
        assert release.wait(WAIT)
        return [1.0]

    runner = ShadowRunner(book, run=blocked, size=1)
    runner.start()
    assert runner.offer(job([1.0]))  # taken by the worker, which now blocks
    assert entered.wait(WAIT)
    assert runner.offer(job([1.0]))  # waits in the queue
    assert not runner.offer(job([1.0]))  # no room: dropped at once
    release.set()
    assert runner.wait_idle(WAIT)
    tally = book.take_changed()[(7, "shadow", 3)]
    assert (tally.dropped, tally.compared) == (1, 2)


def test_requests_are_counted_in_fixed_latency_buckets():
    book = FigureBook()
    book.answered((1, "canary", 2), 0.0004, ok=True)
    book.answered((1, "canary", 2), 0.012, ok=False)
    book.answered((1, "canary", 2), 60.0, ok=True)
    tally = book.take_changed()[(1, "canary", 2)]
    assert (tally.requests, tally.errors) == (3, 1)
    assert tally.latency_buckets[0] == 1 and tally.latency_buckets[-1] == 1
    assert tally.latency_buckets[LATENCY_BUCKETS_MS.index(15)] == 1
    assert book.take_changed() == {}


def test_tallies_of_several_processes_add_up_and_keep_the_largest_difference():
    one, two = Tally(requests=3, errors=1, abs_diff_max=2.0), Tally(requests=4, abs_diff_max=5.0)
    one.latency_buckets[2] = 3
    two.latency_buckets[2] = 4
    total = Tally()
    total.add(one)
    total.add(two)
    assert (total.requests, total.errors, total.abs_diff_max, total.latency_buckets[2]) == (7, 1, 5.0, 7)


def test_percentiles_come_from_the_summed_buckets():
    buckets = [0] * (len(LATENCY_BUCKETS_MS) + 1)
    assert percentile_ms(buckets, 0.5) is None
    buckets[LATENCY_BUCKETS_MS.index(2)] = 99  # 99 requests in (1.5, 2] ms
    buckets[LATENCY_BUCKETS_MS.index(100)] = 1  # one in (75, 100] ms
    assert 1.5 < percentile_ms(buckets, 0.5) <= 2
    assert percentile_ms(buckets, 0.99) <= 2
    assert 75 < percentile_ms(buckets, 0.999) <= 100


def test_a_rollout_learned_late_counts_the_primarys_answers_since_it_started(monkeypatch):
    from registry.serving import figures
    from registry.serving.routing import LiveRollout

    clock = [1000.0]
    monkeypatch.setattr(figures.time, "time", lambda: clock[0])
    book = FigureBook()
    for at, version, ok in ((999.0, 1, True), (1001.0, 1, True), (1002.0, 1, False), (1002.5, 7, True)):
        clock[0] = at
        book.answered_unrouted(("m", "production"), version, seconds=0.002, ok=ok)
    book.answered_unrouted(("m", "staging"), 1, seconds=0.002, ok=True)
    book.adopt(("m", "production"), 1, LiveRollout(id=5, canary=None, shadow=None, sticky_header=None, started_at=1000.0))
    counted = book.take_changed()
    assert list(counted) == [(5, "primary", 1)]  # not before the start, not another version, not another alias
    assert (counted[(5, "primary", 1)].requests, counted[(5, "primary", 1)].errors) == (2, 1)
    book.adopt(("m", "production"), 1, LiveRollout(id=6, canary=None, shadow=None, sticky_header=None, started_at=1000.0))
    assert book.take_changed() == {}  # adopted once: a later rollout does not count them again


def test_answers_outside_a_rollout_are_kept_only_a_few_seconds(monkeypatch):
    from registry.serving import figures
    from registry.serving.routing import LiveRollout

    clock = [1000.0]
    monkeypatch.setattr(figures.time, "time", lambda: clock[0])
    book = FigureBook()
    book.answered_unrouted(("m", "production"), 1, seconds=0.002, ok=True)
    clock[0] += figures.RECENT_SECONDS + 1
    book.answered_unrouted(("m", "production"), 1, seconds=0.002, ok=True)
    book.adopt(("m", "production"), 1, LiveRollout(id=5, canary=None, shadow=None, sticky_header=None, started_at=0.0))
    assert book.take_changed()[(5, "primary", 1)].requests == 1
