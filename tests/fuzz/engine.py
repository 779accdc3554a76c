"""One fuzzer's process (started by ``run.py``), in one of two modes.

``python -m tests.fuzz.engine guided TARGET TIMEOUT [libFuzzer's arguments]``: atheris, guided by the coverage of
the registry's Python modules (instrumented as they are imported), the installed walker loaded. No sanitizer is
preloaded here: gcc's AddressSanitizer runtime provides the coverage symbols libFuzzer's are meant to, and
atheris then sees no coverage at all.

``python -m tests.fuzz.engine sanitized TARGET RUNS SECONDS TIMEOUT [DIR …]``: the sanitized walker loaded (gcc's
ASan and UBSan, ``sanitized.py``; the runtime preloaded by ``run.py``), every input in the DIRs run once (the
guided run's corpus: each reader's outputs walked and explained under the sanitizers), then random inputs until
RUNS inputs or SECONDS in all; prints ``executions: N``.

In both, an input that raises is kept in ``$FUZZ_WORK/crashes``, and one that takes more than TIMEOUT seconds of
CPU time (a CPU timer, ``ITIMER_PROF``: a busy machine makes no hang) ends the process by its signal, its Python
stack printed and its input left in ``crashes/TARGET-inflight`` (``run.py`` keeps it as a hang).
"""
from __future__ import annotations

import faulthandler
import hashlib
import os
import random
import signal
import sys
import time
import traceback
from pathlib import Path

from tests.fuzz import sanitized


CRASHES = Path(os.environ.get("FUZZ_WORK", ".")) / "crashes"


def timed(test, target: str, timeout: float):
    """``test`` run on an input with at most ``timeout`` seconds of CPU time, the input kept while it runs."""
    inflight = CRASHES / f"{target}-inflight"
    faulthandler.register(signal.SIGPROF, chain=True)  # the stack, then the signal's default: the process ends

    def run(data: bytes) -> None:
        inflight.write_bytes(data)
        signal.setitimer(signal.ITIMER_PROF, timeout)
        try:
            test(data)
        finally:  # an exception is the caller's to keep; only an input that ended the process stays here
            signal.setitimer(signal.ITIMER_PROF, 0)
            inflight.unlink()

    return run


def guided(target: str, timeout: float, engine: list[str]) -> None:
    import atheris

    with atheris.instrument_imports(include=["registry"]):
        from tests.fuzz.targets import TARGETS
    test = TARGETS[target]
    seeds = Path(os.environ["FUZZ_WORK"]) / "seeds" / target
    for seed in sorted(seeds.glob("*")) if seeds.is_dir() else ():  # the first calls' imports, before the clock
        test(seed.read_bytes())
    run = timed(test, target, timeout)

    def kept(data: bytes) -> None:
        try:
            run(data)
        except BaseException:  # kept here too: libFuzzer's own copy can be lost while it reports
            (CRASHES / f"{target}-guided-{hashlib.sha1(data).hexdigest()}").write_bytes(data)
            raise

    atheris.Setup([sys.argv[0], *engine], kept)
    atheris.Fuzz()


def sanitized_run(target: str, runs: int, seconds: float, timeout: float, directories: list[Path]) -> int:
    sanitized.use(Path(os.environ["FUZZ_LIBRARY"]))
    from tests.fuzz.targets import TARGETS

    loaded = sanitized.loaded()
    if loaded != [os.environ["FUZZ_LIBRARY"]]:
        raise SystemExit(f"the walker's libraries loaded are {loaded}, not the sanitized one alone")
    test = TARGETS[target]
    seeds = Path(os.environ["FUZZ_WORK"]) / "seeds" / target
    for seed in sorted(seeds.glob("*"))[:1] if seeds.is_dir() else ():  # the first call's imports, before the clock
        test(seed.read_bytes())
    inflight = CRASHES / f"{target}-inflight"
    run = timed(test, target, timeout)
    files = [path for directory in directories if directory.is_dir() for path in sorted(directory.iterdir())]
    generator = random.Random(int.from_bytes(os.urandom(8), "little"))
    executions, failed, deadline = 0, 0, time.monotonic() + seconds if seconds > 0 else float("inf")
    while (runs <= 0 or executions < runs) and time.monotonic() < deadline:
        if executions < len(files):
            data = files[executions].read_bytes()
        else:
            data = generator.randbytes(generator.randrange(0, 2048))
        faulthandler.dump_traceback_later(60, exit=True)  # an input blocked, using no CPU
        try:
            run(data)
        except Exception:
            traceback.print_exc()
            (CRASHES / f"{target}-sanitized-{hashlib.sha1(data).hexdigest()}").write_bytes(data)
            failed += 1
        finally:
            faulthandler.cancel_dump_traceback_later()
        executions += 1
        if not executions & (executions - 1):
            print(f"#{executions}", flush=True)
    inflight.unlink(missing_ok=True)
    print(f"executions: {executions}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    if sys.argv[1] == "guided":
        guided(sys.argv[2], float(sys.argv[3]), sys.argv[4:])
    else:
        target, runs, seconds, timeout, *directories = sys.argv[2:]
        sys.exit(sanitized_run(target, int(runs), float(seconds), float(timeout), [Path(d) for d in directories]))
