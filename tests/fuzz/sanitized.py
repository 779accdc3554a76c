"""The tree walker and TreeSHAP (``registry/inference/native/*.c``) built with gcc's AddressSanitizer and
UndefinedBehaviorSanitizer into a directory of the fuzzer's, and loaded in place of the installed library.

The build is the product's sources with the sanitizers' flags (every report aborts the process: a fuzzer sees it
as a crash); the process that loads it must have gcc's ``libasan`` loaded first (``LD_PRELOAD``, see
:func:`environment`). :func:`use` makes every ``ctypes`` load of the installed ``tree_walk.so`` in this process
load the sanitized one instead, so the product's modules walk and explain with it unchanged.
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NATIVE = ROOT / "registry" / "inference" / "native"
SOURCES = ("tree_walk.c", "tree_shap.c", "low_priority.c", "json_rows.c")
INSTALLED = NATIVE / "tree_walk.so"
# The product's own flags (setup.py) but -O1 for readable reports, and the sanitizers; a float cast out of range
# (a NaN or huge value read as a category) is undefined too, and not part of gcc's -fsanitize=undefined.
FLAGS = ("-O1", "-g", "-std=c11", "-fPIC", "-shared", "-pthread", "-ffp-contract=off", "-fno-fast-math",
         "-fno-omit-frame-pointer", "-fsanitize=address,undefined,float-cast-overflow", "-fno-sanitize-recover=all")
# Python itself leaks by design, and a huge allocation the walker asks for must fail as it does in production
# (its NULL is the walker's "no memory"), not abort the fuzzer.
ASAN_OPTIONS = "detect_leaks=0:allocator_may_return_null=1:abort_on_error=1:symbolize=1"
UBSAN_OPTIONS = "print_stacktrace=1:halt_on_error=1:abort_on_error=1"


def build(directory: Path) -> Path:
    """The sanitized library in ``directory`` (built unless one of the same sources and flags is there)."""
    sources = [NATIVE / name for name in SOURCES]
    digest = hashlib.sha256(" ".join(FLAGS).encode())
    for path in sorted(NATIVE.glob("*.[ch]")):
        digest.update(path.read_bytes())
    library = Path(directory) / f"tree_walk-asan-{digest.hexdigest()[:16]}.so"
    if not library.exists():
        Path(directory).mkdir(parents=True, exist_ok=True)
        partial = library.with_suffix(f".{os.getpid()}.tmp")
        subprocess.run(["gcc", *FLAGS, "-I", str(NATIVE), *map(str, sources), "-o", str(partial), "-lm"],
                       check=True, capture_output=True, text=True)
        partial.rename(library)
    return library


def runtime() -> list[str]:
    """gcc's AddressSanitizer runtime, to be loaded first (``LD_PRELOAD``) by a process that loads the library, then
    gcc's C++ library (Python does not load it at start, and ASan finds what it intercepts only then)."""
    found = []
    for name in ("libasan.so", "libstdc++.so"):
        path = subprocess.run(["gcc", f"-print-file-name={name}"], check=True, capture_output=True,
                              text=True).stdout.strip()
        if not os.path.isabs(path) or not os.path.exists(path):
            raise FileNotFoundError(f"gcc's {name} is missing: apt-get install gcc")
        found.append(os.path.realpath(path))
    return found


def environment(base: dict[str, str] | None = None) -> dict[str, str]:
    """``base`` (this process's environment) with the sanitizers' runtime preloaded and their options set."""
    env = dict(os.environ if base is None else base)
    env["LD_PRELOAD"] = " ".join(runtime())
    env["ASAN_OPTIONS"] = ASAN_OPTIONS
    env["UBSAN_OPTIONS"] = UBSAN_OPTIONS
    return env


def use(library: Path) -> None:
    """Every later ``ctypes`` load of the installed walker in this process loads ``library`` instead (call it
    before anything imports ``registry.inference``)."""
    installed, original = str(INSTALLED), ctypes.CDLL.__init__

    def load(self, name, *args, **kwargs):
        original(self, str(library) if name is not None and os.path.realpath(name) == installed else name,
                 *args, **kwargs)

    ctypes.CDLL.__init__ = load


def loaded() -> list[str]:
    """The paths of the walker's libraries mapped into this process (``/proc/self/maps``)."""
    with open("/proc/self/maps") as maps:
        return sorted({line.split()[-1] for line in maps if "tree_walk" in line and line.rstrip().endswith(".so")})
