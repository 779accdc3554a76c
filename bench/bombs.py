"""Time to refuse each bomb and the peak memory of the worker that read it, on a real gunicorn.

    .venv/bin/python -m bench.bombs                                  # this checkout
    .venv/bin/python -m bench.bombs --repo /work/wt/base-artifacts   # another checkout (its own .venv)

The server is started from ``--repo`` exactly as the README runs it (migrations through the flask
CLI, then ``gunicorn -c gunicorn.conf.py wsgi:app``) with a fresh SQLite database, 2 workers and
its default settings unless ``--max-model-mb`` / ``--max-upload-mb`` are given. Before each upload every worker's peak
resident memory (VmHWM) is reset through /proc/<pid>/clear_refs, so each row's peak is that bomb's.
Figures, never pass/fail; on a shared machine times are noisy. Writes bench/results/bombs-<time>.json
and .md.
"""
from __future__ import annotations

import argparse
import os
import shlex
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import skops.io

from bench import report
from bench.bomb_files import (
    MIB,
    empty_lists_pickle,
    many_arrays_bomb,
    one_array_bomb,
    skops_zip_bomb,
    wide_claim_linear,
)
from bench.harness import uploads
from bench.harness.checkout import commit_of, stop_checkout

HERE = Path(__file__).resolve().parent
EXPANDED = 2600 * MIB


BOMBS = {
    "zlib-one-array-2.6GB": lambda: one_array_bomb(EXPANDED, "zlib", checksummed=True),
    "gzip-many-arrays-2.6GB": lambda: many_arrays_bomb(EXPANDED, "gzip", checksummed=True),
    "bz2-many-arrays-2.6GB": lambda: many_arrays_bomb(EXPANDED, "bz2"),
    "xz-many-arrays-2.6GB": lambda: many_arrays_bomb(EXPANDED, "xz"),
    "30M-empty-lists": lambda: empty_lists_pickle(30_000_000),
    "skops-zip-2.6GB": lambda: skops_zip_bomb(skops.io.dumps(uploads.small_model()), EXPANDED),
    "3M-features-claim": lambda: wide_claim_linear(3_000_000),  # a few hundred bytes saying n_features_in_
}


def main() -> None:
    """Start the server, upload each bomb, print and write the figures."""
    args = _arguments()
    repo = Path(args.repo).resolve()
    names = args.only.split(",") if args.only else list(BOMBS)
    started_at = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    with tempfile.TemporaryDirectory(prefix="bench-bombs-") as root:
        process, url = uploads.start_server(repo, Path(root), workers=args.workers, settings={
            "MAX_MODEL_MB": args.max_model_mb, "MAX_UPLOAD_MB": args.max_upload_mb})
        try:
            rows = [uploads.measure_upload(process, url, f"bomb-{name}", BOMBS[name]()) for name in names]
        finally:
            stop_checkout(process)
    run = {
        "command": shlex.join([sys.executable, "-m", "bench.bombs", *sys.argv[1:]]),
        "started_at": started_at,
        "repo": str(repo),
        "commit": commit_of(repo),
        "loadavg": list(os.getloadavg()),
        "max_model_mb": args.max_model_mb,
        "max_upload_mb": args.max_upload_mb,
        "rows": rows,
    }
    _write(run)


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", default=str(HERE.parent), help="checkout to run the server from")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--max-model-mb", type=int, default=None, help="MAX_MODEL_MB for the server")
    parser.add_argument("--max-upload-mb", type=int, default=None,
                        help="MAX_UPLOAD_MB for the server (MAX_MODEL_MB is never below it; default 512)")
    parser.add_argument("--only", help=f"comma-separated subset of {', '.join(BOMBS)}")
    return parser.parse_args()


def _write(run: dict) -> None:
    lines = [
        f"# Bombs {run['started_at']}", "",
        f"Command: `{run['command']}`  ", f"Server: {run['repo']} at {run['commit']}, "
        f"MAX_MODEL_MB={run['max_model_mb'] or 'default'}, MAX_UPLOAD_MB={run['max_upload_mb'] or 'default'}; "
        "load average at end "
        f"{', '.join(f'{x:.2f}' for x in run['loadavg'])} (shared machine: times are noisy)", "",
        "| bomb | upload MB | status | seconds | worker peak RSS MB | worker RSS before MB | workers lost "
        "| predict after |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        *[f"| {r['name'].removeprefix('bomb-')} | {r['upload_mb']} | {r['status']} | {r['seconds']} | {r['worker_peak_rss_mb']} | "
          f"{r['worker_rss_before_mb']} | {r['workers_lost']} | {r['predict_after']} |" for r in run["rows"]],
    ]
    text = "\n".join(lines)
    print(text)
    report.save("bombs", run, text, HERE / "results")


if __name__ == "__main__":
    main()
