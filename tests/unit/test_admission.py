"""Admission (registry/serving/admission.py): predictions in flight bounded per model and per process,
deadlines honoured before anything runs, and the runs after an answer shed in order while busy."""
import threading
import time
from contextlib import ExitStack

import pytest
from prometheus_client import REGISTRY

from registry.errors import DeadlinePassed, ModelBusy, WorkerBusy
from registry.serving import admission as admission_module
from registry.serving.admission import Admission, AdmissionBounds, Deadline
from registry.serving.figures import FigureBook
from registry.serving.shadow import ShadowJob, ShadowRunner
from tests.unit.test_shadow_and_figures import SHADOW, GivenRows

WAIT = 10  # seconds; a bound on waiting for an Event, so a broken test fails instead of hanging


def admission(per_model=2, per_worker=3, wait_seconds=0.0, *, others=True) -> Admission:
    """An admission; ``others``: another model (``other``) was just asked of it, so each model's bound holds."""
    gate = Admission(AdmissionBounds.of(per_model=per_model, per_worker=per_worker, wait_seconds=wait_seconds))
    if others:
        with gate.admitted("other"):
            pass
    return gate


@pytest.mark.parametrize("per_model, per_worker, expected", [
    (2, 3, (2, 3, 2, 2)),
    (3, 4, (3, 4, 2, 3)),
    (5, 3, (3, 3, 2, 2)),  # no model may hold more than the process
    (0, 0, (1, 1, 1, 1)),  # a bound of 0 would refuse everything
    (4, 7, (4, 7, 4, 6)),
])
def test_bounds_are_at_least_one_and_no_model_holds_more_than_the_process(per_model, per_worker, expected):
    bounds = AdmissionBounds.of(per_model=per_model, per_worker=per_worker)
    assert (bounds.per_model, bounds.per_worker, bounds.shed_shadows_at, bounds.shed_mirrors_at) == expected


def test_a_model_at_its_bound_is_refused_while_another_model_still_starts():
    gate = admission()
    with gate.admitted("a"), gate.admitted("a"):
        with pytest.raises(ModelBusy) as refused:
            with gate.admitted("a"):
                pytest.fail("a third prediction of a started")
        assert "MAX_IN_FLIGHT_PER_MODEL=2" in refused.value.detail and refused.value.retry_after == 1
        with gate.admitted("b"):
            assert gate.in_flight == 3
    assert gate.in_flight == 0


def test_a_model_alone_in_the_process_may_take_every_slot_until_another_is_asked(monkeypatch):
    gate = admission(others=False)
    with gate.admitted("a"), gate.admitted("a"), gate.admitted("a"):  # three of three: nobody else needs one
        with pytest.raises(WorkerBusy):
            gate.check("a")
    with gate.admitted("a"), gate.admitted("a"), gate.admitted("b"):  # b asked: a keeps to its bound again
        with pytest.raises(ModelBusy):
            gate.check("a")
    monkeypatch.setattr(admission_module, "OTHERS_ACTIVE_SECONDS", 0.0)  # b asked long enough ago
    with gate.admitted("a"), gate.admitted("a"), gate.admitted("a"):
        assert gate.in_flight == 3
    gate.serves_others = lambda model: model != "b"  # b is loaded too: a keeps to its bound, unasked
    with gate.admitted("a"), gate.admitted("a"):
        with pytest.raises(ModelBusy):
            gate.check("a")


def test_a_full_process_refuses_every_model():
    gate = admission(per_model=2, per_worker=2)
    with gate.admitted("a"), gate.admitted("b"):
        with pytest.raises(WorkerBusy, match="MAX_IN_FLIGHT=2"):
            gate.check("c")
    gate.check("c")  # free again


def test_a_slot_is_given_back_when_the_prediction_fails():
    gate = admission(per_model=1)
    with pytest.raises(ValueError), gate.admitted("a"):
        raise ValueError("the model could not use these rows")
    with gate.admitted("a"):
        assert gate.in_flight == 1


def test_a_passed_deadline_is_refused_before_a_slot_is_taken_and_a_later_one_starts():
    gate = admission()
    arrived = time.monotonic() - 2.0
    with pytest.raises(DeadlinePassed, match="X-Request-Timeout of 1.5 s"):
        with gate.admitted("a", Deadline(arrived, 1.5)):
            pytest.fail("computed past its deadline")
    assert gate.in_flight == 0
    with gate.admitted("a", Deadline(arrived, 60.0)):
        assert gate.in_flight == 1


def test_check_says_what_admitted_would_without_taking_a_slot():
    gate = admission(per_model=1)
    gate.check("a")
    assert gate.in_flight == 0
    with gate.admitted("a"):
        with pytest.raises(ModelBusy):
            gate.check("a")


def test_many_threads_never_hold_more_than_the_bound():
    gate, most, lock = admission(per_model=3, per_worker=3), [0], threading.Lock()

    def predict():
        for _ in range(200):
            try:
                with gate.admitted("a"):
                    with lock:
                        most[0] = max(most[0], gate.in_flight)
            except ModelBusy:
                pass

    threads = [threading.Thread(target=predict) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert most[0] <= 3 and gate.in_flight == 0


@pytest.mark.parametrize("in_flight, shadow_shed, mirror_shed", [(0, False, False), (1, False, False),
                                                                 (2, True, False), (3, True, True)])
def test_shadow_runs_are_shed_from_half_full_and_mirror_runs_when_every_other_slot_is_taken(in_flight, shadow_shed,
                                                                                          mirror_shed):
    gate = admission(per_model=4, per_worker=4)
    with ExitStack() as held:
        for _ in range(in_flight):
            held.enter_context(gate.admitted("a"))
        assert (gate.sheds(mirror=False), gate.sheds(mirror=True)) == (shadow_shed, mirror_shed)


def test_the_shadow_runner_sheds_while_busy_counts_it_as_a_drop_and_runs_again_after():
    busy, ran = threading.Event(), []
    book = FigureBook()
    runner = ShadowRunner(book, run=lambda servable, rows: ran.append(len(rows)) or [1.0] * len(rows),
                          shed=lambda *, mirror: busy.is_set() and not mirror)
    runner.start()
    shadow = ShadowJob(7, "production", SHADOW, request=GivenRows([[1.0]]), answered=[1.0])
    mirror = ShadowJob(7, "production", SHADOW, request=GivenRows([[1.0]]), answered=[1.0], role="canary",
                       arm_version=2)
    shed_before = _shed("shadow")
    busy.set()
    assert runner.offer(shadow) is False and runner.offer(mirror) is True
    assert runner.wait_idle(WAIT)
    assert _shed("shadow") == shed_before + 1 and ran == [1]  # the mirror ran
    assert book.take_changed()[(7, "shadow", 3)].dropped == 1
    busy.clear()
    assert runner.offer(shadow) is True and runner.wait_idle(WAIT)
    assert ran == [1, 1]


def _shed(kind: str) -> float:
    return REGISTRY.get_sample_value("registry_shadow_shed_total", {"kind": kind}) or 0.0


def test_one_request_of_a_full_model_waits_briefly_for_a_slot_and_a_second_is_refused_at_once():
    gate = admission(per_model=1, per_worker=3, wait_seconds=WAIT)
    waiting, started = threading.Event(), threading.Event()

    def wait_for_a():
        waiting.set()
        with gate.admitted("a"):
            started.set()

    with gate.admitted("a"):
        waiter = threading.Thread(target=wait_for_a)
        waiter.start()
        waiting.wait(WAIT)
        while "a" not in gate._waiting:  # the waiter is inside its wait
            time.sleep(0.001)
        with pytest.raises(ModelBusy):
            gate.check("a")  # one waits already: a second is refused before its body is read
        assert not started.is_set()
    assert started.wait(WAIT)  # the slot given back went to the waiter
    waiter.join()


def test_a_wait_for_a_slot_ends_in_a_refusal_when_none_frees():
    gate = admission(per_model=1, per_worker=3, wait_seconds=0.01)
    with gate.admitted("a"):
        started = time.monotonic()
        with pytest.raises(ModelBusy):
            gate.check("a")  # nobody waits: it waits, before its body is parsed, and none frees
        assert time.monotonic() - started >= 0.01
        with pytest.raises(ModelBusy), gate.admitted("a"):
            pytest.fail("two of a in flight")


def test_the_early_check_waits_for_a_slot_and_lets_the_request_on_when_one_frees():
    gate = admission(per_model=1, per_worker=3, wait_seconds=WAIT)
    held = ExitStack()
    held.enter_context(gate.admitted("a"))
    checked = threading.Event()

    def check_a():
        gate.check("a")  # waits: one of a is in flight
        checked.set()

    checker = threading.Thread(target=check_a)
    checker.start()
    while "a" not in gate._waiting:  # the check is inside its wait
        time.sleep(0.001)
    with pytest.raises(ModelBusy):
        gate.check("a")  # a second is refused at once
    assert not checked.is_set()
    held.close()  # the slot is given back
    assert checked.wait(WAIT)
    checker.join()
    with gate.admitted("a"):  # and the request it let on takes the slot
        assert gate.in_flight == 1



def soon() -> Deadline:
    """A deadline 20 ms away: a request that may wait for a slot waits that long at most."""
    return Deadline(time.monotonic(), 0.02)


def test_a_full_process_keeps_the_next_slot_for_a_model_under_its_bound():
    """a floods (its bound of 2 held), b has one in flight: b's second request at once waits for the next slot
    given back, which no request of a takes first, rather than being refused."""
    gate = admission(per_model=2, per_worker=3, wait_seconds=WAIT)
    first_a, second_a, first_b = ExitStack(), ExitStack(), ExitStack()
    first_a.enter_context(gate.admitted("a"))
    second_a.enter_context(gate.admitted("a"))
    first_b.enter_context(gate.admitted("b"))
    started, done = threading.Event(), threading.Event()

    def second_b():
        with gate.admitted("b"):
            started.set()
            done.wait(WAIT)

    waiter = threading.Thread(target=second_b)
    waiter.start()
    while "b" not in gate._owed:  # b waits, the slot it is owed not yet free
        time.sleep(0.001)
    with pytest.raises(ModelBusy):
        gate.check("a", soon())
    with pytest.raises(WorkerBusy):
        gate.check("c", soon())  # a third model waits its turn, behind b, and none frees
    second_a.close()  # one of a's slots is given back: it is b's
    with pytest.raises(WorkerBusy, match="in flight"):
        gate.check("a", soon())  # a, under its bound again, finds it taken or promised
    assert started.wait(WAIT) and gate.in_flight == 3
    done.set()
    waiter.join()
    first_a.close()
    first_b.close()
    assert gate.in_flight == 0 and not gate._owed


def test_a_slot_owed_that_never_frees_ends_in_a_refusal_and_is_owed_no_longer():
    gate = admission(per_model=2, per_worker=3, wait_seconds=0.01)
    with gate.admitted("a"), gate.admitted("a"), gate.admitted("b"):
        started = time.monotonic()
        with pytest.raises(WorkerBusy, match="MAX_IN_FLIGHT=3"):
            gate.check("b")
        assert time.monotonic() - started >= 0.01
    assert not gate._owed and not gate._waiting
    with gate.admitted("a"), gate.admitted("b"), gate.admitted("b"):
        assert gate.in_flight == 3


def test_threads_of_two_models_waiting_for_slots_never_hold_more_than_the_bounds():
    gate, most, lock = admission(per_model=2, per_worker=3, wait_seconds=0.005), {"all": 0, "a": 0}, threading.Lock()
    held = {"a": 0, "b": 0}

    def predict(model):
        for _ in range(200):
            try:
                with gate.admitted(model):
                    with lock:
                        held[model] += 1
                        most["all"], most["a"] = max(most["all"], gate.in_flight), max(most["a"], held["a"])
                    time.sleep(0.0005)
                    with lock:
                        held[model] -= 1
            except (ModelBusy, WorkerBusy):
                pass

    threads = [threading.Thread(target=predict, args=("a" if i < 6 else "b",)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert most["all"] <= 3 and most["a"] <= 2 and gate.in_flight == 0 and not gate._owed


def test_a_name_the_process_does_not_hold_is_refused_at_once_in_a_full_process_not_owed_a_slot():
    """A flood of made-up names (or of a model not loaded here) at a full worker is refused at once: none holds a
    thread waiting for a slot, nor goes before the requests of the models the process serves."""
    gate = admission(per_model=2, per_worker=3, wait_seconds=WAIT)
    gate.holds = lambda model: model in {"a", "b"}
    with gate.admitted("a"), gate.admitted("a"), gate.admitted("b"):
        started = time.monotonic()
        with pytest.raises(WorkerBusy):
            gate.check("made-up")
        assert time.monotonic() - started < WAIT and not gate._owed
        with pytest.raises(WorkerBusy):
            gate.check("b", soon())  # a model it serves still waits for its slot (here none frees)
