"""Hostile XGBoost and LightGBM model files, read by a checkout's own readers: seconds, CPU and peak memory.

    .venv/bin/python -m bench.hostile_model_files                          # this checkout
    .venv/bin/python -m bench.hostile_model_files --repo /work/main --timeout 120   # another one (before)
    .venv/bin/python -m bench.hostile_model_files --only xgb-stumps-10000,ubj-nulls-57MB

Each file is made here (from a real model trained by xgboost or lightgbm, its trees repeated, or by hand for the
ones no library writes), then read in a fresh process by ``--repo``'s ``read_model_file``, as an upload is.
Peak memory is the reading process's high-water mark (VmHWM, reset before the read) above its resident memory
with the file's bytes already held, divided by the file's size. Figures, never pass/fail; on a shared
machine times are noisy. Writes bench/results/hostile_model_files-<time>.json and .md.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import struct
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from bench import report
from bench.harness.checkout import commit_of

HERE = Path(__file__).resolve().parent
MIB = 1024 * 1024


def _xgboost_document(max_depth: int, rounds: int, rows: int = 2000) -> dict:
    import xgboost as xgb

    rng = np.random.default_rng(0)
    X = rng.normal(size=(rows, 10)).astype(np.float32)
    y = (X[:, 0] + X[:, 1] * X[:, 2] + rng.normal(size=rows) > 0).astype(int)
    booster = xgb.train({"objective": "binary:logistic", "max_depth": max_depth, "nthread": 1,
                         "min_child_weight": 0, "lambda": 0}, xgb.DMatrix(X, label=y), rounds)
    return json.loads(booster.save_raw("json"))


def _repeated(document: dict, n_trees: int) -> dict:
    """``document`` with its trees repeated to ``n_trees`` (each with its own id)."""
    model = document["learner"]["gradient_booster"]["model"]
    trees = model["trees"]
    model["trees"] = [{**trees[i % len(trees)], "id": i} for i in range(n_trees)]
    model["tree_info"] = [0] * n_trees
    model["iteration_indptr"] = list(range(n_trees + 1))
    model["gbtree_model_param"]["num_trees"] = str(n_trees)
    return document


def xgboost_stumps(n_trees: int) -> bytes:
    """A JSON model of ``n_trees`` stumps (three nodes each)."""
    return json.dumps(_repeated(_xgboost_document(1, 20), n_trees), separators=(",", ":")).encode()


def xgboost_stumps_ubjson(n_trees: int) -> bytes:
    """The same stumps as UBJSON, as XGBoost writes them."""
    import xgboost as xgb

    return bytes(xgb.Booster(model_file=bytearray(xgboost_stumps(n_trees))).save_raw("ubj"))


def xgboost_large(megabytes: int) -> bytes:
    """A JSON model of deep trees (depth 10), about ``megabytes`` MB."""
    document = _xgboost_document(10, 20, rows=20_000)
    trees = document["learner"]["gradient_booster"]["model"]["trees"]
    per_tree = len(json.dumps(trees, separators=(",", ":"))) / len(trees)
    return json.dumps(_repeated(document, int(megabytes * MIB / per_tree)), separators=(",", ":")).encode()


def ubjson_nulls(megabytes: int) -> bytes:
    """A UBJSON object whose ``learner`` is an array of ``megabytes`` million nulls (``Z``)."""
    count = megabytes * MIB
    return b"{L" + struct.pack(">q", 7) + b"learner[" + b"Z" * count + b"]}"


def ubjson_alternating(megabytes: int) -> bytes:
    """A UBJSON object whose ``learner`` is an array of integers whose markers alternate (``I``, ``l``), about
    ``megabytes`` MB: no run of one marker to read at once."""
    return b"{L" + struct.pack(">q", 7) + b"learner[" + b"I\x10\x00l\x00\x01\x00\x00" * (megabytes * MIB // 8) + b"]}"


def xgboost_leaf(value: str) -> bytes:
    """A JSON stump model whose first tree's first leaf value is ``value`` (text, as the file holds it)."""
    document = _xgboost_document(1, 3)
    text = json.dumps(document, separators=(",", ":"))
    conditions = document["learner"]["gradient_booster"]["model"]["trees"][0]["split_conditions"]
    old = '"split_conditions":' + json.dumps(conditions, separators=(",", ":"))
    return text.replace(old, '"split_conditions":[' + f"{conditions[0]!r},{value},{conditions[2]!r}]", 1).encode()


def ubjson_nan_leaf() -> bytes:
    """A UBJSON stump model whose first tree's first leaf value is a float32 NaN."""
    import xgboost as xgb

    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3)).astype(np.float32)
    data = bytearray(xgb.train({"objective": "binary:logistic", "max_depth": 1, "nthread": 1},
                               xgb.DMatrix(X, label=(X[:, 0] > 0).astype(int)), 3).save_raw("ubj"))
    at = data.index(b"split_conditions[$d#L") + len(b"split_conditions[$d#L") + 8
    data[at + 4:at + 8] = struct.pack(">f", float("nan"))
    return bytes(data)


def lightgbm_sigmoid(digits: int) -> bytes:
    """A LightGBM binary model whose objective's sigmoid is ``1e`` and ``digits`` nines."""
    import lightgbm

    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 3))
    booster = lightgbm.train({"objective": "binary", "verbose": -1, "num_threads": 1},
                             lightgbm.Dataset(X, label=(X[:, 0] > 0).astype(int)), 3)
    return re.sub(r"sigmoid:[0-9.]+", "sigmoid:1e" + "9" * digits, booster.model_to_string(), count=1).encode()


def lightgbm_large() -> bytes:
    """A real LightGBM text model of 800 trees of 127 leaves (about 11 MB)."""
    import lightgbm

    rng = np.random.default_rng(0)
    X = rng.normal(size=(20_000, 20))
    y = (X[:, 0] + X[:, 1] * X[:, 2] + rng.normal(size=len(X)) > 0).astype(int)
    booster = lightgbm.train({"objective": "binary", "num_leaves": 127, "min_data_in_leaf": 2, "verbose": -1,
                              "num_threads": 2}, lightgbm.Dataset(X, label=y), 800)
    return booster.model_to_string().encode()


def xgboost_skeleton(element: bytes, megabytes: int) -> bytes:
    """A JSON object whose learner holds a list of ``element`` repeated to about ``megabytes`` MB: values XGBoost
    never writes, outside any array of numbers."""
    return b'{"learner":{"x":[' + element * (megabytes * MIB // len(element)) + b'{}]}}'


CASES = {
    "xgb-stumps-10000": lambda: xgboost_stumps(10_000),
    "xgb-stumps-30000": lambda: xgboost_stumps(30_000),
    "xgb-stumps-100000": lambda: xgboost_stumps(100_000),
    "xgb-ubj-stumps-100000": lambda: xgboost_stumps_ubjson(100_000),
    "xgb-json-229MB": lambda: xgboost_large(229),
    "ubj-nulls-57MB": lambda: ubjson_nulls(57),
    "ubj-alternating-integers-57MB": lambda: ubjson_alternating(57),
    "lgb-sigmoid-5000-digits": lambda: lightgbm_sigmoid(5_000),
    "xgb-json-inf-leaf": lambda: xgboost_leaf("1e999"),
    "xgb-ubj-nan-leaf": ubjson_nan_leaf,
    "xgb-json-arrays-of-arrays-16MB": lambda: xgboost_skeleton(b"[1],", 16),
    "xgb-json-empty-objects-16MB": lambda: xgboost_skeleton(b"{},", 16),
    "xgb-json-objects-of-one-array-16MB": lambda: xgboost_skeleton(b'{"a":[1]},', 16),
    "lgb-short-lines-16MB": lambda: b"tree\n" + b"ab\n" * (16 * MIB // 3),
    "lgb-8-byte-lines-16MB": lambda: b"tree\n" + b"abcdefg\n" * (16 * MIB // 8 - 10),
    "lgb-astral-line-15MB": lambda: b"tree\nversion=v4\n" + "\U0001F600".encode() + b"a" * (15 * MIB) + b"\n",
    "lgb-trees-11MB": lightgbm_large,
}

# Run in the child, from --repo: read the file as an upload is, and print what it cost.
_CHILD = r"""
import json, resource, sys, time
from pathlib import Path
from registry.artifacts.loading import model_files
data = Path(sys.argv[1]).read_bytes()
framework = model_files.framework_of(data[:64])
def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
before = status("VmRSS")
open("/proc/self/clear_refs", "w").write("5")
wall, cpu = time.perf_counter(), time.process_time()
try:
    form, _ = model_files.read_model_file(framework, data, None)
    outcome = f"read: {len(form.roots):,} trees, {len(form.nodes):,} nodes"
except Exception as error:
    outcome = f"{type(error).__name__}: {error}"[:160]
print(json.dumps({"seconds": round(time.perf_counter() - wall, 2), "cpu_seconds": round(time.process_time() - cpu, 2),
                  "peak_above_file_mb": round((status("VmHWM") - before) / 2**20, 1), "outcome": outcome}))
"""


def measure(repo: Path, name: str, data: bytes, timeout: float) -> dict:
    """Read ``data`` with ``repo``'s readers in a fresh process; its seconds, CPU, peak memory and outcome."""
    with tempfile.NamedTemporaryFile(prefix=f"bench-{name}-") as file:
        file.write(data)
        file.flush()
        row = {"name": name, "file_mb": round(len(data) / MIB, 1)}
        try:
            done = subprocess.run([sys.executable, "-c", _CHILD, file.name], cwd=repo, capture_output=True, text=True,
                                  timeout=timeout, env={**os.environ, "PYTHONPATH": str(repo)})
        except subprocess.TimeoutExpired:
            return {**row, "seconds": f"> {timeout:g}", "cpu_seconds": None, "peak_above_file_mb": None,
                    "peak_ratio": None, "outcome": f"still reading after {timeout:g} s (stopped)"}
        if done.returncode:
            return {**row, "seconds": None, "cpu_seconds": None, "peak_above_file_mb": None, "peak_ratio": None,
                    "outcome": f"crashed ({done.returncode}): {done.stderr.strip()[-160:]}"}
        found = json.loads(done.stdout.strip().splitlines()[-1])
        return {**row, **found, "peak_ratio": round(found["peak_above_file_mb"] / max(len(data) / MIB, 1e-9), 2)}


def main() -> None:
    """Make each file, read it with --repo's readers, print and write the figures."""
    args = _arguments()
    repo = Path(args.repo).resolve()
    names = args.only.split(",") if args.only else list(CASES)
    started_at = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    rows = []
    for name in names:
        row = measure(repo, name, CASES[name](), args.timeout)
        print(row, flush=True)
        rows.append(row)
    run = {"command": shlex.join([sys.executable, "-m", "bench.hostile_model_files", *sys.argv[1:]]),
           "started_at": started_at, "repo": str(repo), "commit": commit_of(repo), "loadavg": list(os.getloadavg()),
           "rows": rows}
    lines = [f"# Hostile model files {started_at}", "", f"Command: `{run['command']}`  ",
             f"Readers: {repo} at {run['commit']}; load average at end "
             f"{', '.join(f'{x:.2f}' for x in run['loadavg'])} (shared machine: times are noisy)", "",
             "| file | MB | seconds | CPU seconds | peak above the file MB | peak / file | outcome |",
             "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
             *[f"| {r['name']} | {r['file_mb']} | {r['seconds']} | {r['cpu_seconds']} | {r['peak_above_file_mb']} | "
               f"{r['peak_ratio']} | {r['outcome'].replace('|', '/')} |" for r in rows]]
    text = "\n".join(lines)
    print(text)
    report.save("hostile_model_files", run, text, HERE / "results")


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", default=str(HERE.parent), help="checkout whose readers read the files")
    parser.add_argument("--only", help=f"comma-separated subset of {', '.join(CASES)}")
    parser.add_argument("--timeout", type=float, default=900, help="seconds a read may take before it is stopped")
    return parser.parse_args()


if __name__ == "__main__":
    main()
