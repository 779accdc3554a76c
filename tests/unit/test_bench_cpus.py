"""The overload bench can run a server and its callers on CPUs of their own (bench/harness/cpus.py): the split
shares the CPUs, and a process started within ``pinned`` keeps the server's share while its starter gets its own
back."""
import json
import os
import subprocess
import sys
import threading

import pytest

from bench.harness import cpus


def test_the_split_gives_each_side_its_own_cpus_the_server_the_larger_half():
    assert cpus.split({0, 1}) == ({0}, {1})
    assert cpus.split({4, 2, 7}) == ({2, 4}, {7})
    server, callers = cpus.split(set(range(8)))
    assert server == {0, 1, 2, 3} and callers == {4, 5, 6, 7}


def test_one_cpu_cannot_be_split():
    with pytest.raises(ValueError, match="two CPUs at least"):
        cpus.split({3})


def _affinity_of_a_child() -> set[int]:
    code = "import json, os; print(json.dumps(sorted(os.sched_getaffinity(0))))"
    return set(json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                         check=True).stdout))


def test_a_process_started_within_keeps_the_cpus_and_the_starter_gets_its_own_back():
    before = cpus.available()
    one = {min(before)}
    seen = {}

    def starter():  # a thread of its own: the pin is the calling thread's, and pytest's must stay as it was
        with cpus.pinned(one):
            seen["child"] = _affinity_of_a_child()
            seen["within"] = cpus.available()
        seen["after"] = cpus.available()

    thread = threading.Thread(target=starter)
    thread.start()
    thread.join()
    assert seen == {"child": one, "within": one, "after": before}
    assert os.sched_getaffinity(0) == before  # this thread was never pinned


def test_none_changes_nothing():
    before = cpus.available()
    with cpus.pinned(None):
        assert cpus.available() == before
