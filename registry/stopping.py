"""Whether this server is stopping: raised once by gunicorn's master when SIGTERM arrives, seen at once
by every worker, so their readiness answers "no" before anything else of the stop happens.

The flag is one byte of anonymous shared memory, mapped when gunicorn.conf.py imports this module in
the master: every worker forked later shares the same page. A process that no master forked (the
Flask test client, a CLI command) never sees it raised.
"""
import mmap

_FLAG = mmap.mmap(-1, 1)  # anonymous maps are MAP_SHARED: the master's write is every worker's read


def announce() -> None:
    """Say that this server is stopping (the master, on SIGTERM)."""
    _FLAG[0] = 1


def requested() -> bool:
    """Whether the server this process belongs to is stopping."""
    return _FLAG[0] == 1
