"""The background loop every job of a process runs on: periods, wake-ups, more-is-waiting, failures,
stops, and one thread per process."""
import os
import threading

from registry.process.loop import Loop


def test_a_woken_loop_ticks_at_once_not_after_its_period():
    ticks = []
    loop = Loop("t", 3600, lambda: ticks.append(1))
    assert loop.start()
    loop.wake()
    assert _eventually(lambda: len(ticks) == 1)
    assert loop.stop(timeout=5)


def test_a_tick_that_says_more_is_waiting_is_followed_at_once():
    ticks = []

    def tick():
        ticks.append(1)
        return len(ticks) < 3

    loop = Loop("t", 3600, tick, first_tick_at_start=True)
    loop.start()
    assert _eventually(lambda: len(ticks) == 3)  # well within the hour's period
    loop.stop(timeout=5)
    assert len(ticks) == 3


def test_a_failing_tick_is_logged_and_the_loop_goes_on(caplog):
    ticks = []

    def tick():
        ticks.append(1)
        if len(ticks) == 1:
            raise RuntimeError("a failing turn")

    loop = Loop("failing", 3600, tick, first_tick_at_start=True)
    loop.start()
    assert _eventually(lambda: len(ticks) == 1)
    loop.wake()
    assert _eventually(lambda: len(ticks) == 2)
    loop.stop(timeout=5)
    assert "the failing loop's turn failed" in caplog.text


def test_a_loop_starts_once_per_process_and_a_zero_period_never():
    loop = Loop("t", 3600, lambda: None)
    assert loop.start() and not loop.start() and loop.running
    assert loop.stop(timeout=5) and not loop.running
    assert not Loop("never", 0, lambda: None).start()


def test_a_forked_child_starts_its_own_thread():
    loop = Loop("t", 3600, lambda: None)
    loop.start()
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # the child: the parent's thread did not come along
        started = loop.start() and loop.running
        os.write(write, b"1" if started else b"0")
        os._exit(0)
    os.waitpid(child, 0)
    assert os.read(read, 1) == b"1"
    loop.stop(timeout=5)


def _eventually(condition, seconds: float = 5.0) -> bool:
    done = threading.Event()
    for _ in range(int(seconds / 0.01)):
        if condition():
            return True
        done.wait(0.01)
    return condition()
