"""Explanations a hostile model file asks for: a LightGBM chain tree thousands of levels deep, alone and as a forest,
explained over HTTP by a real gunicorn server of a checkout: seconds until the answer, and its status.

    .venv/bin/python -m bench.hostile_explanations                      # this checkout, its default bounds
    .venv/bin/python -m bench.hostile_explanations --unbounded          # the cost bounds out of the way
    PYTHONPATH=/work/main .venv/bin/python bench/hostile_explanations.py   # another checkout (before)

Each case uploads its file with a ``ci`` token to a fresh gunicorn of one worker of one thread and asks
``POST /models/<name>/1/predict`` with ``explain: true`` for some rows, with or without ``X-Request-Timeout``, then
asks for a one-row prediction of a small model at once on the same worker (its thread is free again, or not). Figures, never pass/fail; on a shared machine times are
noisy. Writes bench/results/hostile_explanations-<time>.json and .md.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from bench import report
from bench.harness.checkout import commit_of

HERE = Path(__file__).resolve().parent


def lightgbm_chain(depth: int, n_trees: int = 1) -> bytes:
    """A LightGBM regression model of ``n_trees`` chains ``depth`` splits long, each level on a column of its own
    (``depth`` columns): node ``i`` sends ``x_i > 0`` to leaf ``i`` and the rest down the chain. Every row walks the
    whole chain, and its exact explanation takes ``depth / 2`` quadrature points at each of its ``2 depth + 1``
    nodes: the most work a file this size can ask of path-dependent TreeSHAP."""
    names = " ".join(f"c{i}" for i in range(depth))
    infos = " ".join("[-1:1]" for _ in range(depth))
    splits = " ".join(str(i) for i in range(depth))
    left = " ".join(str(~i) for i in range(depth))
    right = " ".join(str(i + 1) for i in range(depth - 1)) + f" {~depth}"
    leaves = " ".join(f"{(i % 7) / 10:g}" for i in range(depth + 1))
    counts = " ".join("1" for _ in range(depth + 1))
    internal = " ".join(str(depth + 1 - i) for i in range(depth))
    tree = "\n".join([
        f"num_leaves={depth + 1}", "num_cat=0", f"split_feature={splits}", "split_gain=" + " ".join("1" for _ in range(depth)),
        "threshold=" + " ".join("0" for _ in range(depth)), "decision_type=" + " ".join("2" for _ in range(depth)),
        f"left_child={right}", f"right_child={left}", f"leaf_value={leaves}", f"leaf_weight={counts}",
        f"leaf_count={counts}", "internal_value=" + " ".join("0" for _ in range(depth)),
        f"internal_weight={internal}", f"internal_count={internal}", "is_linear=0", "shrinkage=1"])
    blocks = [f"Tree={t}\n{tree}\n\n" for t in range(n_trees)]
    sizes = " ".join(str(len(block)) for block in blocks)
    header = "\n".join(["tree", "version=v4", "num_class=1", "num_tree_per_iteration=1", "label_index=0",
                        f"max_feature_idx={depth - 1}", "objective=regression", f"feature_names={names}",
                        f"feature_infos={infos}", f"tree_sizes={sizes}", "", ""])
    return (header + "".join(blocks) + "end of trees\n\nparameters:\n[objective: regression]\nend of parameters\n"
            "\npandas_categorical:null\n").encode()


def rows(depth: int, count: int) -> list[list[float]]:
    """``count`` rows that walk the whole chain (every column at or below 0: down the chain at every level)."""
    return (-np.ones((count, depth))).tolist()


# (case, file, rows, headers): what each request asks, on a server of one worker of one thread.
CASES = [
    ("chain-4000 x 100 rows", (4000, 1), 100, {}),
    ("chain-4000 x 30 rows, X-Request-Timeout: 1", (4000, 1), 30, {"X-Request-Timeout": "1"}),
    ("forest of 10 chains x 10 rows", (4000, 10), 10, {}),
    ("forest of 10 chains x 10 rows, X-Request-Timeout: 1", (4000, 10), 10, {"X-Request-Timeout": "1"}),
]
# The same requests with the cost bounds set out of the way: the deadline alone stops them.
UNBOUNDED = {"EXPLAIN_MAX_ROW_COST": 10**15, "EXPLAIN_MAX_COST": 10**15, "EXPLAIN_TIMEOUT_SECONDS": 2}
TOKEN = "bench-hostile-explanations"


def run(root: Path, env: dict, cases: list, timeout: float) -> list[dict]:
    """Each case on a fresh gunicorn (one worker of one thread) of the checkout this runs from: the seconds and
    status of its explanation, then of a one-row prediction of a small model right after it."""
    import requests

    from bench.harness import server

    found = []
    with server.running(f"sqlite:///{root}/registry.db", root, TOKEN, workers=1,
                        env={"WORKER_THREADS": 1, "PREDICTION_LOG_SAMPLE": 0, **env}) as (live,):
        ci = requests.post(f"{live.url}/tokens", json={"name": "bench-ci", "role": "ci"}, headers=live.headers,
                           timeout=60).json()["token"]
        ci = {"Authorization": f"Bearer {ci}"}
        uploaded = set()
        for name, (depth, trees), count, headers in [("small", (3, 1), 1, {}), *cases]:
            model = f"chain-{depth}-{trees}"
            if model not in uploaded:
                sent = requests.post(f"{live.url}/models/{model}/versions", headers=ci, timeout=300,
                                     files={"artifact": ("model.txt", lightgbm_chain(depth, trees))})
                assert sent.status_code == 201, sent.text
                uploaded.add(model)
            if name == "small":
                continue
            started = time.monotonic()
            try:
                answered = requests.post(f"{live.url}/models/{model}/1/predict", headers=headers, timeout=timeout,
                                         json={"instances": rows(depth, count), "explain": True})
                status, seconds = answered.status_code, round(time.monotonic() - started, 2)
            except requests.Timeout:
                status, seconds = "none", f"> {timeout:g}"
            started = time.monotonic()
            after = requests.post(f"{live.url}/models/chain-3-1/1/predict", json={"instances": rows(3, 1)},
                                  timeout=timeout)
            row = {"case": name, "status": status, "seconds": seconds, "next_status": after.status_code,
                   "next_seconds": round(time.monotonic() - started, 2)}
            print(row, flush=True)
            found.append(row)
    return found


def main() -> None:
    """Run the cases on a server of this checkout (``--unbounded``: with the cost bounds out of the way), print and
    write the figures. For another checkout's figures run this file with that checkout first on PYTHONPATH."""
    import tempfile

    args = _arguments()
    started_at = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    from config import BASE_DIR

    with tempfile.TemporaryDirectory(prefix="bench-explain-") as root:
        rows_found = run(Path(root), UNBOUNDED if args.unbounded else {}, CASES, args.timeout)
    command = shlex.join([sys.executable, *sys.argv])
    repo = Path(BASE_DIR)
    lines = [f"# Hostile explanations {started_at}", "", f"Command: `{command}`  ",
             f"Server: {repo} at {commit_of(repo)}, one worker of one thread"
             f"{' with ' + json.dumps(UNBOUNDED) if args.unbounded else ''}; load average "
             f"{', '.join(f'{x:.2f}' for x in os.getloadavg())} (shared machine: times are noisy)", "",
             "| case | status | seconds | next request's status | its seconds |", "| --- | --- | ---: | --- | ---: |",
             *[f"| {r['case']} | {r['status']} | {r['seconds']} | {r['next_status']} | {r['next_seconds']} |"
               for r in rows_found]]
    text = "\n".join(lines)
    print(text)
    report.save("hostile_explanations", {"command": command, "started_at": started_at, "repo": str(repo),
                                         "rows": rows_found}, text, HERE / "results")


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--unbounded", action="store_true", help="set the cost bounds out of the way")
    parser.add_argument("--timeout", type=float, default=300, help="seconds a client waits for one answer")
    return parser.parse_args()


if __name__ == "__main__":
    main()
