"""The failed-authentication counts workers share: one table across fork, a minute from the first hit."""
import os

from api import rate_limits
from api.rate_limits import SharedWindows


def test_a_forked_process_counts_in_the_same_table():
    windows = SharedWindows(slots=64)
    windows.hit("203.0.113.7")
    child = os.fork()
    if child == 0:  # the child counts twice and leaves at once
        windows.hit("203.0.113.7")
        windows.hit("203.0.113.7")
        os._exit(0)
    os.waitpid(child, 0)

    assert windows.hit("203.0.113.7")[0] == 4
    assert windows.hit("203.0.113.8")[0] == 1


def test_a_window_starts_at_the_first_hit_and_lasts_a_minute(monkeypatch):
    windows, now = SharedWindows(slots=64), [1_000.5]
    monkeypatch.setattr(rate_limits.time, "time", lambda: now[0])

    assert windows.hit("a") == (1, 60.0)
    now[0] += 59
    assert windows.hit("a") == (2, 1.0)
    now[0] += 1
    assert windows.hit("a") == (1, 60.0)


def test_a_lock_left_held_by_a_dead_worker_counts_nothing_rather_than_waiting():
    windows = SharedWindows(slots=64)
    windows.lock.acquire()

    assert windows.hit("a") == (0, 60)
