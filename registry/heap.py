"""Giving freed memory back to the system.

glibc keeps what Python frees in its arenas for the next allocation, so a worker that unpickled a
large model once would carry its high-water mark for good, and every worker its own. Two things
keep it down: large blocks (model arrays) always get their own mapping, which ``free`` unmaps
(``map_large_blocks``, at start), and after a one-off peak (an upload unpacked, a served form made)
``give_back`` returns the heap's free pages.
"""
import ctypes
import ctypes.util
import functools

_M_MMAP_THRESHOLD = -3  # mallopt's parameter number (malloc.h)
_LARGE_BLOCK_BYTES = 256 * 1024


@functools.cache
def _libc():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc if hasattr(libc, "malloc_trim") and hasattr(libc, "mallopt") else None
    except OSError:  # not glibc: nothing to ask
        return None


def map_large_blocks() -> None:
    """Serve blocks of 256 KB and more from their own mappings, for good (glibc otherwise raises the
    bound to the largest block freed so far, and later arrays land in a heap that never shrinks)."""
    libc = _libc()
    if libc is not None:
        libc.mallopt(_M_MMAP_THRESHOLD, _LARGE_BLOCK_BYTES)


def give_back() -> None:
    """Return the heap's free pages to the system, where the C library can (glibc's ``malloc_trim(0)``)."""
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)
