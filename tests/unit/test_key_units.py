"""Sticky keys as a rollout's units: each key weighs its first few requests only, distinct keys are
counted in fixed memory and merged across processes without counting a shared key twice, and a new
split starts counting afresh."""
import pytest

from registry.serving.figures import FigureBook, row_class
from registry.serving.key_units import HLL_REGISTERS, KEY_WEIGHT, KeyUnits, counted, merged

TALLY = (7, "canary", 2)


def test_a_key_weighs_its_first_requests_only_and_other_keys_are_unaffected():
    units = KeyUnits(epoch=1.0)
    assert [units.weigh("flood") for _ in range(KEY_WEIGHT + 5)] == [True] * KEY_WEIGHT + [False] * 5
    assert all(units.weigh(f"user-{i}") for i in range(1000))


@pytest.mark.parametrize("n", [1, 50, 1000, 20_000])
def test_distinct_keys_are_counted_within_the_sketchs_stated_error(n):
    units = KeyUnits(epoch=1.0)
    for i in range(n):
        units.weigh(f"user-{i}")
        units.weigh(f"user-{i}")  # twice: still one key
    estimate, spread = counted(units.sketch())
    assert abs(estimate - n) <= max(4 * spread, 1)


def test_a_key_seen_by_two_processes_is_counted_once_in_their_union():
    first, second = KeyUnits(epoch=1.0), KeyUnits(epoch=1.0)
    for i in range(3000):
        first.weigh(f"user-{i}")
    for i in range(2000, 5000):
        second.weigh(f"user-{i}")
    estimate, spread = counted(merged(first.sketch(), second.sketch()))
    assert abs(estimate - 5000) <= 4 * spread and spread < 0.02 * 5000


def test_the_memory_for_keys_does_not_grow_with_the_number_of_keys():
    units = KeyUnits(epoch=1.0)
    for i in range(50_000):
        units.weigh(f"key-{i}")
    assert units._registers.nbytes == HLL_REGISTERS and units._counts.nbytes == 3 * 4096
    assert len(units.sketch()) < 2 * HLL_REGISTERS  # compressed, base64: a few KB whatever the keys


def test_the_figure_book_weighs_a_flood_from_one_key_as_one_unit_and_starts_again_in_a_new_split():
    book = FigureBook()
    weighed = [book.answered(TALLY, 0.001, ok=True, unit="flood", epoch=1.0) for _ in range(100)]
    assert weighed.count(True) == KEY_WEIGHT
    tally = book.take_changed()[TALLY]
    assert (tally.requests, tally.weighed, tally.latency_by_rows["1"][1]) == (100, KEY_WEIGHT, KEY_WEIGHT)
    assert counted(tally.key_sketch)[0] == 1 and tally.key_epoch == 1.0
    assert book.answered(TALLY, 0.001, ok=True, unit="flood", epoch=2.0)  # the split changed: it weighs again
    assert book.take_changed()[TALLY].key_epoch == 2.0


def test_without_a_sticky_header_every_request_weighs_and_counts_no_keys():
    book = FigureBook()
    assert all(book.answered(TALLY, 0.001, ok=True, rows=20) for _ in range(50))
    book.refused(TALLY)
    tally = book.take_changed()[TALLY]
    assert (tally.weighed, tally.refused, tally.key_sketch, set(tally.latency_by_rows)) == (50, 1, None, {"11-100"})


@pytest.mark.parametrize("rows, name", [(1, "1"), (2, "2-10"), (10, "2-10"), (11, "11-100"), (1000, "101-1000"),
                                        (1001, "1001+"), (10_000, "1001+")])
def test_requests_fall_in_batch_size_classes(rows, name):
    assert row_class(rows) == name


def test_an_arms_keys_never_outnumber_its_requests_where_the_sketch_overshoots():
    """Issue 68: a rollout showed keys 80 for requests 79; the estimate is held to the requests."""
    from registry.aliases.rollout_report import _served
    from registry.autopilot.step_figures import keys_in
    from registry.serving.figures import Tally

    for n in range(1, 400):  # the first count of distinct keys the sketch overstates
        units = KeyUnits(epoch=1.0)
        for i in range(n):
            units.weigh(f"user-{i}")
        if counted(units.sketch())[0] > n:
            break
    else:
        pytest.fail("no overshoot below 400 keys: the test needs another range")
    tally = Tally(requests=n, key_epoch=1.0, key_sketch=units.sketch())
    assert keys_in(tally, 1.0)[0] == n
    assert _served(2, tally, 1.0, sticky=True)["keys"] == n
