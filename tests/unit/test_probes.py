"""Dependency checks answered within a deadline: fresh when asked one after another, stalled at once
while a check hangs, never two checks at a time."""
import threading

from registry.serving.probes import Probe

DEADLINE = 0.05


def started(probe: Probe) -> Probe:
    """``probe`` with its loop running (as the app's lifecycle starts it)."""
    probe.start()
    return probe


class Check:
    """A check that counts its calls and can be held until released."""

    def __init__(self):
        self.calls = 0
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()

    def __call__(self):
        self.calls += 1
        self.entered.set()
        self.gate.wait()
        return f"answer {self.calls}"


def test_askers_one_after_another_each_get_a_fresh_answer():
    check = Check()
    probe = started(Probe("db", check, DEADLINE))

    assert [probe.answer().value for _ in range(3)] == ["answer 1", "answer 2", "answer 3"]


def test_a_hanging_check_is_stalled_for_every_asker_and_never_doubled():
    check = Check()
    probe = started(Probe("store", check, DEADLINE))
    assert probe.answer().value == "answer 1"
    check.gate.clear()

    first = probe.answer()  # starts the second check and gives up on it after the deadline
    later = [probe.answer() for _ in range(5)]  # at once: it is still running

    assert first.unanswered and all(answer.unanswered for answer in later)
    assert later[-1].waiting_seconds >= DEADLINE
    assert check.calls == 2
    check.gate.set()
    while probe.answer().unanswered:  # the hung check ends; the next asker starts a new one
        pass
    assert check.calls >= 3


def test_while_another_askers_check_is_young_the_last_answer_is_given_without_waiting():
    check = Check()
    probe = started(Probe("store", check, deadline=60))
    assert probe.answer().value == "answer 1"
    check.gate.clear()
    check.entered.clear()
    waiting = threading.Thread(target=probe.answer)
    waiting.start()
    check.entered.wait()

    assert probe.answer().value == "answer 1"
    check.gate.set()
    waiting.join()


def test_before_the_first_answer_only_the_asker_who_started_the_check_waits():
    check = Check()
    check.gate.clear()
    probe = started(Probe("store", check, deadline=60))
    waiting = threading.Thread(target=probe.answer)
    waiting.start()
    check.entered.wait()

    answer = probe.answer()

    assert answer.unanswered and answer.waiting_seconds < 60
    check.gate.set()
    waiting.join()
    assert probe.answer().value == "answer 2"


def test_a_check_that_raises_is_answered_with_its_error():
    def broken():
        raise OSError("no route to host")

    answer = started(Probe("store", broken, DEADLINE)).answer()

    assert isinstance(answer.error, OSError) and not answer.unanswered
