"""Explanations a hostile model file asks for: a LightGBM chain tree thousands of levels deep, alone and as a forest,
explained over HTTP by a real gunicorn server of a checkout: seconds until the answer, and its status.

    .venv/bin/python -m bench.hostile_explanations                         # this checkout
    .venv/bin/python -m bench.hostile_explanations --repo /work/main       # another one (before)

Each case uploads its file with a ``ci`` token and asks ``POST /models/<name>/1/predict`` with ``explain: true``
for some rows, with or without ``X-Request-Timeout``, then asks for a one-row prediction of a small model at once
on the same worker (the worker is free again, or not). Figures, never pass/fail; on a shared machine times are
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
