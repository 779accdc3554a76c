"""Progress bars for long steps: drawn on a terminal's stderr, silent when stderr is not a TTY."""
from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator

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
