"""The app's lifecycle: starts once per process in the order registered, stops in reverse, a failing
stop never keeps the others from running."""
import pytest

from api.lifecycle import Lifecycle


def test_starts_run_once_in_order_and_stops_in_reverse_past_a_failure(caplog):
    ran = []
    lifecycle = Lifecycle()
    lifecycle.add("metrics", start=lambda: ran.append("start metrics"), stop=lambda: ran.append("stop metrics"))
    lifecycle.add("broken", stop=lambda: 1 / 0)
    lifecycle.add("deliverer", start=lambda: ran.append("start deliverer"), stop=lambda: ran.append("stop deliverer"))

    lifecycle.start()
    lifecycle.start()  # every request asks: once is all
    lifecycle.stop()

    assert ran == ["start metrics", "start deliverer", "stop deliverer", "stop metrics"]
    assert "stopping the broken failed" in caplog.text


def test_a_start_that_fails_stops_what_started_before_it_and_the_next_caller_starts_each_part_once():
    ran = []

    def watch():
        ran.append("start watcher")
        if ran.count("start watcher") == 1:
            raise OSError("the database is away")

    lifecycle = Lifecycle()
    lifecycle.add("metrics", start=lambda: ran.append("start metrics"), stop=lambda: ran.append("stop metrics"))
    lifecycle.add("watcher", start=watch, stop=lambda: ran.append("stop watcher"))
    with pytest.raises(OSError):
        lifecycle.start()
    assert ran == ["start metrics", "start watcher", "stop metrics"]  # the watcher never started: not stopped
    lifecycle.stop()  # nothing runs: the failed start left nothing started
    assert ran == ["start metrics", "start watcher", "stop metrics"]

    lifecycle.start()
    lifecycle.stop()
    assert ran[3:] == ["start metrics", "start watcher", "stop watcher", "stop metrics"]
