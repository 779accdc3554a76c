"""Progress bars for long steps: drawn on a terminal's stderr, silent when stderr is not a TTY."""
from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

from tqdm import tqdm


def iterate(items: Iterable, total: int, desc: str) -> Iterator:
    """Yield ``items`` while a bar counts them."""
    yield from tqdm(items, total=total, desc=desc, file=sys.stderr, disable=None, leave=False)


def steps(total: int, desc: str) -> tqdm:
    """A bar over a fixed number of named steps; call ``set_postfix_str`` and ``update`` on it."""
    return tqdm(total=total, desc=desc, unit="step", file=sys.stderr, disable=None, leave=False)


def transfer(total_bytes: int | None, desc: str) -> tqdm:
    """A bar over bytes downloaded or uploaded."""
    return tqdm(
        total=total_bytes, desc=desc, unit="B", unit_scale=True, unit_divisor=1024,
        file=sys.stderr, disable=None, leave=False,
    )


@contextmanager
def received(desc: str) -> Iterator[Callable[[int, int | None], None]]:
    """A bar over a download, moved by the callback yielded (the client's ``progress(received, size)``)."""
    with transfer(None, desc) as bar:
        def update(count: int, size: int | None) -> None:
            if size is not None and bar.total != size:
                bar.total = size
            bar.update(count - bar.n)

        yield update
