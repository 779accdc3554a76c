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


def test_a_start_that_fails_is_tried_again_by_the_next_caller():
    calls = []

    def start():
        calls.append(1)
        if len(calls) == 1:
            raise OSError("the database is away")

    lifecycle = Lifecycle()
    lifecycle.add("watcher", start=start)
    with pytest.raises(OSError):
        lifecycle.start()
    lifecycle.start()
    assert len(calls) == 2
