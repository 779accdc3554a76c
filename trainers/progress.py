"""Progress bars for long steps: drawn on a terminal's stderr, silent when stderr is not a TTY."""
from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, redirect_stdout

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


def dask_compute(works: list):
    """Compute the Dask collections ``works`` together; their results. On a terminal, Dask's own bar is
    drawn on stderr while they run: the scheduler's progress when a cluster's client is the default
    (distributed writes it to stdout, which the command keeps for what it prints, so it is sent to
    stderr), else the local scheduler's."""
    import dask

    if not sys.stderr.isatty():
        return dask.compute(*works)
    try:
        from distributed import default_client, progress

        client = default_client()
    except (ImportError, ValueError):  # no distributed installed, or no client: the local scheduler
        from dask.diagnostics import ProgressBar

        with ProgressBar(out=sys.stderr):
            return dask.compute(*works)
    futures = client.compute(works)
    with redirect_stdout(sys.stderr):
        progress(*futures)
    print(file=sys.stderr)
    return tuple(client.gather(futures))


def spark_console(builder):
    """``builder`` of a Spark session that draws Spark's own stage bar on a terminal's stderr, when this
    process starts the session (one that runs already, under spark-submit, keeps its settings)."""
    from pyspark.sql import SparkSession

    if SparkSession.getActiveSession() is None:  # not on a terminal: no bar (its redraws would fill a log)
        return builder.config("spark.ui.showConsoleProgress", "true" if sys.stderr.isatty() else "false")
    return builder
