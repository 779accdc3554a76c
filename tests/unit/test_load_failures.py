"""The memory of failed loads: an exponential backoff per version, cut short when the file changes."""
import subprocess
import sys

import pytest

from config import BASE_DIR
from registry.errors import ArtifactCorrupted, StoreUnavailable
from registry.serving.load_failures import MAX_RETRY_SECONDS_WHILE_UNAVAILABLE, LoadFailures

KEY = ("m", 1, "a" * 64)
STAMP = (1, 100, 5)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def failures(clock):
    return LoadFailures(first_delay=0.25, max_delay=240, clock=clock)


def damaged() -> ArtifactCorrupted:
    return ArtifactCorrupted("the stored artifact … no longer matches its sha256", {"sha256": ["mismatch"]})


def test_the_wait_doubles_from_the_first_delay_up_to_the_cap(failures):
    delays = [failures.record(KEY, damaged(), STAMP).delay for _ in range(14)]

    assert delays[:6] == [0.25, 0.5, 1.0, 2.0, 4.0, 8.0]
    assert delays[-1] == 240
    assert max(delays) == 240


def test_the_remembered_error_is_raised_until_the_wait_is_over(failures, clock):
    failures.record(KEY, damaged(), STAMP)

    with pytest.raises(ArtifactCorrupted, match="no longer matches") as caught:
        failures.raise_if_waiting(KEY, STAMP)
    assert caught.value.errors == {"sha256": ["mismatch"]}

    clock.now += 0.25
    failures.raise_if_waiting(KEY, STAMP)  # time for the next attempt: nothing raised


def test_a_changed_file_is_tried_at_once(failures):
    failures.record(KEY, damaged(), STAMP)

    failures.raise_if_waiting(KEY, (2, 100, 6))  # repaired or replaced
    failures.raise_if_waiting(KEY, None)  # deleted: trying reports "missing" at once


def test_a_success_forgets_the_failure_and_other_versions_are_never_held(failures):
    failures.record(KEY, damaged(), STAMP)

    failures.raise_if_waiting(("m", 2, "b" * 64), STAMP)
    failures.clear(KEY)
    failures.raise_if_waiting(KEY, STAMP)
    assert failures.get(KEY) is None


def test_the_remembered_error_keeps_no_traceback(failures):
    try:
        raise damaged()
    except ArtifactCorrupted as exc:
        failure = failures.record(KEY, exc, STAMP)

    assert failure.error.__traceback__ is None
    with pytest.raises(ArtifactCorrupted) as first:
        failures.raise_if_waiting(KEY, STAMP)
    assert first.value is not failure.error  # each answer raises its own copy


def test_the_detail_of_an_unexpected_error_names_no_path(failures):
    failure = failures.record(KEY, PermissionError(13, "Permission denied", "/srv/artifacts/secret"), STAMP)

    assert "/srv" not in failure.detail
    assert "PermissionError" in failure.detail


def test_a_store_that_did_not_answer_is_tried_again_within_ten_seconds_however_long_it_was_down(failures):
    for _ in range(20):
        failure = failures.record(KEY, StoreUnavailable("the artifact store does not answer"), STAMP)
        damage = failures.record(("m", 2, "b" * 64), damaged(), STAMP)

    assert failure.delay == MAX_RETRY_SECONDS_WHILE_UNAVAILABLE == 10.0
    assert damage.delay == 240


def test_no_traceback_is_kept_where_exceptions_are_pickled_with_theirs():
    """dask's distributed installs tblib's pickling of exceptions on import (in the tests, whatever
    imports it first), and copy.copy then keeps the traceback: in a process of its own, so the
    installation reaches no other test."""
    script = (
        "import tblib.pickling_support\n"
        "from registry.errors import ArtifactCorrupted\n"
        "from registry.serving.load_failures import LoadFailures\n"
        "tblib.pickling_support.install()\n"
        "try:\n"
        "    raise ArtifactCorrupted('damaged')\n"
        "except ArtifactCorrupted as exc:\n"
        "    failure = LoadFailures(0.25).record('key', exc, None)\n"
        "print(failure.error.__traceback__ is None, str(failure.error))\n"
    )
    ran = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=BASE_DIR)
    assert ran.stdout.split() == ["True", "damaged"], ran.stderr
