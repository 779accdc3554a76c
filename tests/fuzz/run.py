"""Run the fuzzers (atheris, libFuzzer's engine) and say, per target, how many inputs ran and what crashed.

``python -m tests.fuzz.run [TARGET …] [--runs N] [--seconds S] [--work DIR]`` (every target when none is named;
``make fuzz`` runs it with ``FUZZ_RUNS`` and ``FUZZ_SECONDS``) builds the sanitized walker (``sanitized.py``),
writes the seeds (``seeds.py``) once into ``DIR``, then runs each target in a process of its own, with gcc's
AddressSanitizer preloaded, until it has run N inputs or S seconds, or crashed. A crash is an exception the
target does not document (``targets.py``), a sanitizer's report, or an input that runs longer than
``--timeout`` (1 s). Each target's line says its executions and crashes; a crashing input is kept in
``DIR/crashes/`` (run it again with ``python -m tests.fuzz.run TARGET --input FILE``), libFuzzer's log in
``DIR/logs/``, the inputs it found in ``DIR/corpus/``. The exit status is 1 if any target crashed.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from tests.fuzz import sanitized

TARGETS = ("xgboost_json", "xgboost_ubj", "lightgbm", "pickle", "skops", "served_form", "walk", "json_rows")
# Targets of compiled code, whose coverage the guided run does not see (it instruments Python): their seeds, then
# random inputs, under the sanitizers only.
SANITIZED_ONLY = ("walk", "json_rows")
DEFAULT_WORK = Path(os.environ.get("TMPDIR", "/tmp")) / "registry-fuzz"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("targets", nargs="*", choices=[[], *TARGETS], default=[])
    parser.add_argument("--runs", type=int, default=1_000_000, help="inputs per target (0: no bound)")
    parser.add_argument("--seconds", type=int, default=0, help="seconds per target (0: no bound)")
    parser.add_argument("--timeout", type=int, default=1, help="an input running longer (seconds) is a hang")
    parser.add_argument("--work", type=Path, default=DEFAULT_WORK)
    parser.add_argument("--input", type=Path, help="run the one target on this input, once")
    arguments = parser.parse_args(argv)
    work = arguments.work.resolve()
    library = sanitized.build(work / "lib")
    if not (work / "seeds" / ".done").exists():
        subprocess.run([sys.executable, "-m", "tests.fuzz.seeds", str(work / "seeds")], check=True,
                       cwd=sanitized.ROOT)
        (work / "seeds" / ".done").touch()
    crashed = False
    for target in arguments.targets or TARGETS:
        result = fuzz(target, work, library, runs=arguments.runs, seconds=arguments.seconds,
                      timeout=arguments.timeout, one_input=arguments.input)
        print(result.line(), flush=True)
        crashed |= not result.passed
    return 1 if crashed else 0


class Result:
    """What one target's run did: its executions (guided by coverage, then under the sanitizers) and its crashes."""

    def __init__(self, target: str):
        self.target, self.guided, self.sanitized, self.seconds = target, 0, 0, 0.0
        self.crashes: list[Path] = []
        self.failures: list[str] = []

    @property
    def passed(self) -> bool:
        return not self.crashes and not self.failures

    def line(self) -> str:
        found = "no crash" if self.passed else f"{len(self.crashes) or 1} crash(es): " + ", ".join(
            [*map(str, self.crashes), *self.failures])
        return (f"fuzz {self.target:13s} {self.guided:>9,} guided + {self.sanitized:>7,} sanitized executions "
                f"in {self.seconds:6.1f} s: {found}")


def fuzz(target: str, work: Path, library: Path, *, runs: int, seconds: int, timeout: int = 1,
         one_input: Path | None = None) -> Result:
    """Run one target: guided by coverage (atheris; for a reader), then every input it kept again under the
    sanitizers; the walker's and the body reader's targets run their seeds then random inputs under the sanitizers
    only (module docstring)."""
    corpus, seeds, crashes, logs = (work / "corpus" / target, work / "seeds" / target, work / "crashes",
                                    work / "logs")
    for directory in (corpus, seeds, crashes, logs):
        directory.mkdir(parents=True, exist_ok=True)
    result, started = Result(target), time.monotonic()
    before = set(crashes.iterdir())
    env = {**os.environ, "FUZZ_WORK": str(work), "FUZZ_LIBRARY": str(library), "PYTHONPATH": str(sanitized.ROOT)}
    if target not in SANITIZED_ONLY and one_input is None:
        engine = [str(corpus), str(seeds), f"-runs={runs if runs > 0 else -1}", f"-max_total_time={seconds}",
                  "-timeout=60", "-rss_limit_mb=6144", "-print_final_stats=1", f"-artifact_prefix={crashes / target}-"]
        code, log = _run(["guided", target, str(timeout), *engine], env, logs / f"{target}-guided.log")
        _keep_unfinished(crashes, target)
        stats = re.findall(r"stat::number_of_executed_units: (\d+)", log)
        progress = re.findall(r"^#(\d+)\s", log, re.MULTILINE)
        result.guided = int(stats[-1]) if stats else int(progress[-1]) if progress else 0
        if code:
            result.failures.append(f"guided run exit {code} ({logs / f'{target}-guided.log'})")
    if one_input is not None:
        shutil.rmtree(work / "replay", ignore_errors=True)
        (work / "replay").mkdir()
        shutil.copy(one_input, work / "replay")
        replay = ["1", "0", str(timeout), str(work / "replay")]
    elif target in SANITIZED_ONLY:
        replay = [str(runs), str(seconds), str(timeout), str(seeds)]
    else:  # what the guided run kept (and the seeds), each once
        replay = [str(sum(1 for d in (corpus, seeds) for _ in d.iterdir())), "0", str(timeout), str(corpus),
                  str(seeds)]
    code, log = _run(["sanitized", target, *replay], sanitized.environment(env), logs / f"{target}-sanitized.log")
    found = re.findall(r"^executions: (\d+)", log, re.MULTILINE)
    progress = re.findall(r"^#(\d+)$", log, re.MULTILINE)
    result.sanitized = int(found[-1]) if found else int(progress[-1]) if progress else 0
    if code:
        result.failures.append(f"sanitized run exit {code} ({logs / f'{target}-sanitized.log'})")
    _keep_unfinished(crashes, target)
    result.crashes = sorted(set(crashes.iterdir()) - before)
    result.seconds = time.monotonic() - started
    return result


def _keep_unfinished(crashes: Path, target: str) -> None:
    """The input a process was running when it ended (a hang, a sanitizer's abort), kept as a crash."""
    inflight = crashes / f"{target}-inflight"
    if inflight.exists():
        inflight.rename(crashes / f"{target}-unfinished-{hashlib.sha1(inflight.read_bytes()).hexdigest()}")


def _run(arguments: list[str], env: dict[str, str], log_path: Path) -> tuple[int, str]:
    with open(log_path, "w") as log:
        code = subprocess.run([sys.executable, "-m", "tests.fuzz.engine", *arguments], env=env, cwd=sanitized.ROOT,
                              stdout=log, stderr=subprocess.STDOUT).returncode
    return code, log_path.read_text(errors="replace")


if __name__ == "__main__":
    sys.exit(main())
