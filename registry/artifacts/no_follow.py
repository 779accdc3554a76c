"""Files of this machine's caches reached without following a symbolic link.

Whatever was put under a cache directory (a link to ``/etc/passwd``, a directory swapped for a link),
reading, writing, touching or locking an entry of it never lands outside it: a link where a file or a
directory of the cache belongs is not the cache's, and is taken away rather than followed.
"""
import errno
import fcntl
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

NO_FOLLOW = os.O_NOFOLLOW | os.O_CLOEXEC


def ensure_directory(path: Path) -> None:
    """Make ``path`` a directory of its own (its parents are the configured root's): a link or a file
    where it belongs is removed first."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        path.mkdir(parents=True, exist_ok=True)
        return
    if stat.S_ISDIR(mode):
        return
    path.unlink()  # a link (or a file) in the cache's place: not the cache's
    path.mkdir(exist_ok=True)


def open_directory(name: str | Path, dir_fd: int | None = None) -> int:
    """A descriptor of the directory ``name`` (relative to ``dir_fd``); OSError (ELOOP, ENOTDIR) when it is a
    link or not a directory."""
    return os.open(name, os.O_RDONLY | os.O_DIRECTORY | NO_FOLLOW, dir_fd=dir_fd)


def open_regular(name: str | Path, dir_fd: int | None = None) -> int:
    """A read-only descriptor of the regular file ``name`` (relative to ``dir_fd``); OSError when it is a link
    or anything but a regular file."""
    fd = os.open(name, os.O_RDONLY | NO_FOLLOW, dir_fd=dir_fd)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(errno.EINVAL, "not a regular file", str(name))
    return fd


def read_regular(path: Path) -> bytes:
    """The bytes of the regular file at ``path``; OSError when it is a link or not a regular file."""
    with os.fdopen(open_regular(path), "rb") as f:
        return f.read()


def touch_regular(path: Path) -> bool:
    """Mark the regular file at ``path`` as just used (the link itself is never followed); False when there
    is none: nothing, or a link or anything else in its place, which is then removed."""
    try:
        if not stat.S_ISREG(os.lstat(path).st_mode):
            path.unlink()
            return False
        os.utime(path, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True


@contextmanager
def locked(directory: Path, name: str) -> Iterator[None]:
    """Hold the exclusive lock of the lock file ``directory/name`` (made when missing, never through a link)."""
    ensure_directory(directory)
    path = directory / name
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | NO_FOLLOW, 0o600)
    except OSError as exc:
        if exc.errno != errno.ELOOP:
            raise
        path.unlink()  # a link where a lock file belongs
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | NO_FOLLOW, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # lets the lock go
