"""A server and its callers on CPUs of their own, as a deployment has them.

On one machine the callers that load a server take the cores the server would have: in bench/overload.py's
flood the flood's callers used about 2 of the two cores' 18 CPU-seconds, and the quiet model's callers run beside
them, where a deployment's callers run on other machines. What a caller then measures is the server's isolation
and the callers' own theft of its CPU, together. :func:`split` shares this process's CPUs between the two, and
:func:`pinned` starts a server (or anything else) on its share: a process or thread inherits the CPUs of the
thread that starts it.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager


def split(cpus: set[int]) -> tuple[frozenset[int], frozenset[int]]:
    """The server's CPUs (the first half of ``cpus``, the larger with an odd count) and the callers' (the rest);
    ValueError with fewer than two."""
    ordered = sorted(cpus)
    if len(ordered) < 2:
        raise ValueError(f"a server and its callers apart need two CPUs at least; this process has {len(ordered)}")
    half = (len(ordered) + 1) // 2
    return frozenset(ordered[:half]), frozenset(ordered[half:])


def available() -> set[int]:
    """The CPUs the calling thread may run on."""
    return os.sched_getaffinity(0)


def pin(cpus: frozenset[int] | set[int]) -> None:
    """The calling thread (and what it starts from now on) on ``cpus`` only."""
    os.sched_setaffinity(0, cpus)


@contextmanager
def pinned(cpus: frozenset[int] | set[int] | None) -> Iterator[None]:
    """The calling thread on ``cpus`` for the block, so that the processes and threads it starts meanwhile keep
    them; its own CPUs again after. None: nothing changed."""
    if cpus is None:
        yield
        return
    before = available()
    pin(cpus)
    try:
        yield
    finally:
        pin(before)
