"""Settings read from the machine and the environment: the memory the service may use, secrets, the priority of
large walks, one unit per kind, and a bad value stopping the start with the variable's name."""
import os
import subprocess
import sys
from dataclasses import FrozenInstanceError
from datetime import timedelta

import pytest

from config import BASE_DIR, Environment, load, memory_mb


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


def test_a_secret_is_read_from_its_file_less_the_final_newline(tmp_path):
    (tmp_path / "key").write_text("a key \n")
    environ = {"SECRET_KEY_FILE": str(tmp_path / "key")}
    assert Environment(environ).secret("SECRET_KEY") == "a key "
    assert load(environ).access.secret_key == "a key "
    assert "SECRET_KEY" not in environ


def test_a_secret_without_a_file_is_its_variable_and_an_empty_one_is_none():
    assert Environment({"SECRET_KEY": "k"}).secret("SECRET_KEY") == "k"
    assert Environment({"SECRET_KEY": ""}).secret("SECRET_KEY") is None


def test_the_low_priority_of_large_walks_is_a_nice_value_or_idle():
    assert load({}).serving.low_priority_nice == 10
    assert load({"LOW_PRIORITY_NICE": " Idle "}).serving.low_priority_nice is None  # SCHED_IDLE
    assert load({"LOW_PRIORITY_NICE": "19"}).serving.low_priority_nice == 19
    for wrong in ("0", "20", "-5", "low"):
        with pytest.raises(SystemExit, match=f"LOW_PRIORITY_NICE must be a nice value from 1 to 19, or idle, not '{wrong}'"):
            load({"LOW_PRIORITY_NICE": wrong})


def test_durations_are_seconds_and_sizes_bytes_whatever_unit_the_variable_is_given_in():
    given = load({"ADMISSION_WAIT_MS": "250", "SESSION_LIFETIME_HOURS": "1.5", "PREDICTION_LOG_DAYS": "2",
                  "MAX_METADATA_KB": "64", "MAX_UPLOAD_MB": "3", "ARTIFACT_SCRUB_MB_PER_SECOND": "0.5"})
    assert given.serving.admission_wait_seconds == 0.25
    assert given.access.session_lifetime_seconds == 5400
    assert given.prediction_log.retention_seconds == 2 * 86_400
    assert given.limits.max_metadata_bytes == 64 * 1024
    assert given.limits.max_upload_bytes == 3 * 2**20
    assert given.storage.scrub_bytes_per_second == 2**19


def test_the_webhook_deadline_is_twice_the_timeout_unless_set_and_never_0():
    assert load({"WEBHOOK_TIMEOUT_SECONDS": "3"}).webhooks.deadline_seconds == 6
    assert load({"WEBHOOK_DEADLINE_SECONDS": "4"}).webhooks.deadline_seconds == 4
    with pytest.raises(SystemExit, match="WEBHOOK_DEADLINE_SECONDS must be a number of seconds above 0"):
        load({"WEBHOOK_DEADLINE_SECONDS": "0"})


def test_the_monitor_window_is_read_once_with_its_span_and_a_window_too_long_stops_the_start():
    assert (load({}).monitoring.window, load({}).monitoring.span) == ("1h", timedelta(hours=1))
    assert load({"MONITOR_WINDOW": " 7d "}).monitoring.span == timedelta(days=7)
    with pytest.raises(SystemExit, match="MONITOR_WINDOW='400d': a window is at most 366 days"):
        load({"MONITOR_WINDOW": "400d"})


def test_the_settings_are_frozen():
    with pytest.raises(FrozenInstanceError):
        load({}).webhooks.timeout_seconds = 1


def _start_with(**environ) -> subprocess.CompletedProcess:
    """Read the settings in a fresh interpreter with these variables set, as a starting worker does."""
    return subprocess.run([sys.executable, "-c", "import config; config.settings()"], cwd=BASE_DIR, capture_output=True, text=True,
                          env={**os.environ, **environ}, timeout=60)


@pytest.mark.parametrize("name, wrong, kind", [
    ("MAX_UPLOAD_MB", "lots", "a number of MB, 0 or more"),
    ("WORKER_THREADS", "-2", "a whole number, 0 or more"),
    ("WEBHOOK_TIMEOUT_SECONDS", "5s", "a number of seconds, 0 or more"),
    ("ALIAS_REFRESH_SECONDS", "-1", "a number of seconds, 0 or more"),
    ("ADMISSION_WAIT_MS", "fast", "a number of milliseconds, 0 or more"),
    ("PREDICTION_LOG_SAMPLE", "all", "a number, 0 or more"),
    ("WATCH_ALIASES", "flase", "true or false"),
    ("DRAIN_SECONDS", "3s", "a number of seconds, 0 or more"),  # gunicorn's, read by config.py as the others
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
        [sys.executable, "-c", "from config import settings; s = settings(); print(s.limits.max_upload_bytes,"
         " s.webhooks.timeout_seconds, s.serving.watch_aliases, s.access.require_auth_for_reads,"
         " s.serving.alias_refresh_seconds)"],
        cwd=BASE_DIR, capture_output=True, text=True, timeout=60, env={**os.environ, **environ})
    assert read.returncode == 0, read.stderr
    assert read.stdout.split() == [str(64 * 2**20), "2.5", "False", "True", "1.0"]


def test_a_retired_setting_that_is_set_is_noted_for_the_start_s_warning_and_changes_nothing_else():
    assert load({"BACK_LANE_NICE": "10"}).server.retired == ("BACK_LANE_NICE",)
    assert load({"BACK_LANE_NICE": "Off"}).server.retired == load({}).server.retired == ()
