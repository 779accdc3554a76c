"""The overload bench's callers (bench/harness/overload.py) time answers without their own process's garbage
collections in the way: none runs while they measure, and the process collects again afterwards."""
import gc

import pytest

from bench.harness.overload import no_collections


class Node:
    def __init__(self):
        self.me = self  # a cycle: only the collector frees it


def test_no_collection_runs_within_and_the_process_collects_again_after():
    assert gc.isenabled()
    with no_collections():
        assert not gc.isenabled()
        assert gc.get_freeze_count() > 0  # what existed is out of any collection's way
        Node()
    assert gc.isenabled() and gc.get_freeze_count() == 0
    assert gc.collect() >= 1  # the cycle made within was left for after


def test_an_error_within_still_gives_the_collector_back():
    with pytest.raises(RuntimeError), no_collections():
        raise RuntimeError("a caller failed")
    assert gc.isenabled() and gc.get_freeze_count() == 0
