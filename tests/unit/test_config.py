"""Defaults read from the machine: the memory the service may use, and the model bound made of it."""
import os

from config import memory_mb


def test_a_cgroup_limit_is_the_memory_the_service_may_use(tmp_path):
    limit = tmp_path / "memory.max"
    limit.write_text(f"{3 * 2**30}\n")
    assert memory_mb(limit) == 3 * 1024


def test_without_a_cgroup_limit_the_machine_memory_counts(tmp_path):
    machine = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20
    unlimited = tmp_path / "memory.max"
    unlimited.write_text("max\n")
    assert memory_mb(unlimited) == machine
    assert memory_mb(tmp_path / "absent") == machine
