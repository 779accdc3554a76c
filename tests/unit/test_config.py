"""Settings read from the machine and the environment: the memory the service may use, secrets, and the
priority of large walks, and a bad value stopping the start with the variable's name."""
import os
import subprocess
import sys

import pytest

from config import BASE_DIR, memory_mb, nice_value, secret


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


def test_a_secret_is_read_from_its_file_less_the_final_newline(tmp_path, monkeypatch):
    (tmp_path / "key").write_text("a key \n")
    monkeypatch.setenv("SECRET_KEY_FILE", str(tmp_path / "key"))
    monkeypatch.delenv("SECRET_KEY", raising=False)

    assert secret("SECRET_KEY") == "a key "
    assert "SECRET_KEY" not in os.environ


def test_a_secret_without_a_file_is_its_variable_and_an_empty_one_is_none(monkeypatch):
    monkeypatch.delenv("SECRET_KEY_FILE", raising=False)
    monkeypatch.setenv("SECRET_KEY", "k")
    assert secret("SECRET_KEY") == "k"
    monkeypatch.setenv("SECRET_KEY", "")
    assert secret("SECRET_KEY") is None


def test_the_low_priority_of_large_walks_is_a_nice_value_or_idle(monkeypatch):
    monkeypatch.delenv("LOW_PRIORITY_NICE", raising=False)
    assert nice_value("LOW_PRIORITY_NICE", "10") == 10
    monkeypatch.setenv("LOW_PRIORITY_NICE", " Idle ")
    assert nice_value("LOW_PRIORITY_NICE", "10") is None  # SCHED_IDLE
    monkeypatch.setenv("LOW_PRIORITY_NICE", "19")
    assert nice_value("LOW_PRIORITY_NICE", "10") == 19
    for wrong in ("0", "20", "-5", "low"):
        monkeypatch.setenv("LOW_PRIORITY_NICE", wrong)
        with pytest.raises(ValueError, match=f"LOW_PRIORITY_NICE must be a nice value from 1 to 19, or idle .*'{wrong}'"):
            nice_value("LOW_PRIORITY_NICE", "10")


def _start_with(**environ) -> subprocess.CompletedProcess:
    """Import config in a fresh interpreter with these variables set, as a starting worker does."""
    return subprocess.run([sys.executable, "-c", "import config"], cwd=BASE_DIR, capture_output=True, text=True,
                          env={**os.environ, **environ}, timeout=60)


@pytest.mark.parametrize("name, wrong, kind", [
    ("MAX_UPLOAD_MB", "lots", "a whole number"),
    ("WORKER_THREADS", "-2", "a whole number, 0 or more"),
    ("WEBHOOK_TIMEOUT_SECONDS", "5s", "a number, 0 or more"),
    ("ALIAS_REFRESH_SECONDS", "-1", "a number, 0 or more"),
    ("WATCH_ALIASES", "flase", "true or false"),
    ("DRAIN_SECONDS", "3s", "a number, 0 or more"),  # gunicorn's, read by config.py as the others
])
def test_a_bad_value_stops_the_start_naming_the_variable(name, wrong, kind):
    started = _start_with(**{name: wrong})
    assert started.returncode == 1
    assert f"{name} must be {kind}" in started.stderr and repr(wrong) in started.stderr
    assert "Traceback" not in started.stderr  # a message, not a stack


def test_good_values_of_every_kind_are_read_and_an_empty_one_is_the_default():
    environ = {"MAX_UPLOAD_MB": "64", "WEBHOOK_TIMEOUT_SECONDS": " 2.5 ", "WATCH_ALIASES": "Off",
               "REQUIRE_AUTH_FOR_READS": "YES", "ALIAS_REFRESH_SECONDS": ""}
    read = subprocess.run(
        [sys.executable, "-c", "from config import Config as C; print(C.MAX_UPLOAD_MB, C.WEBHOOK_TIMEOUT_SECONDS,"
         " C.WATCH_ALIASES, C.REQUIRE_AUTH_FOR_READS, C.ALIAS_REFRESH_SECONDS)"],
        cwd=BASE_DIR, capture_output=True, text=True, timeout=60, env={**os.environ, **environ})
    assert read.returncode == 0, read.stderr
    assert read.stdout.split() == ["64", "2.5", "False", "True", "1.0"]
