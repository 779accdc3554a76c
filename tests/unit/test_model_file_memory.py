"""Hostile model files are read in memory bounded by their size (issue 67, item 11): each is read by the upload's
reader in a fresh process, whose high-water mark of resident memory (VmHWM, reset once the file's bytes are held)
must stay within twice the file's size, whether the file is read or refused.

The shapes: a large XGBoost JSON file of deep trees (a 229 MB one took 6.5 times its size before the arrays were
read by NumPy), one of many stumps, whose skeleton is most of the file (2.07 times its size while the skeleton's
text was kept until the trees' arrays were read), UBJSON files of nulls and of integers (5.2 times its size while
each integer was a Python object until the bound on values refused the file), of integers whose markers alternate,
which no run reads at once (5.2 times its size), and of empty lists (9.5 times) while each value held in a list
counted as one, whatever it built, JSON files whose skeleton (what is
left once the flat arrays are cut out) is dense with values XGBoost never writes, which the json module would build
at 60 to 90 bytes each (a 34 MB file of arrays of arrays took 25 times its size, 26 for a list of empty objects, 28
for objects of one array), and LightGBM files: of short lines, each a Python string (25 times its size), of 8-byte
lines (9 times its size while the file was split into lines), of one line with a four-byte character (5 times,
while that line was decoded whole), and a real model's trees (2.05 to 2.2 times, while its text and its trees'
arrays were held at once)."""
from __future__ import annotations

import json
import re
import struct
import subprocess
import sys

import numpy as np
import pytest

MIB = 2**20

# Run in the child: read the file as an upload is; print the peak above the memory held before, and the outcome.
_CHILD = r"""
import json, sys
from pathlib import Path
from registry.artifacts.loading import model_files
from registry.errors import InvalidArtifact
data = Path(sys.argv[1]).read_bytes()
def status(key):
    with open("/proc/self/status") as lines:
        return next(int(line.split()[1]) * 1024 for line in lines if line.startswith(key + ":"))
before = status("VmRSS")
with open("/proc/self/clear_refs", "w") as refs:
    refs.write("5")
try:
    form, _ = model_files.read_model_file(model_files.framework_of(data[:64]), data, None, max_features=10_000)
    outcome = f"read {len(form.roots)} trees"
except InvalidArtifact as error:
    outcome = f"refused: {error}"
print(json.dumps({"peak": status("VmHWM") - before, "outcome": outcome}))
"""


def _peak(tmp_path, data: bytes) -> tuple[int, str]:
    path = tmp_path / "model"
    path.write_bytes(data)
    done = subprocess.run([sys.executable, "-c", _CHILD, str(path)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    return found["peak"], found["outcome"]


def _xgboost_trees(max_depth: int, megabytes: int | None = None, n_trees: int | None = None) -> bytes:
    """An XGBoost JSON model of 20 trained trees of ``max_depth`` repeated to about ``megabytes`` MB, or to
    ``n_trees`` trees."""
    import xgboost as xgb

    rng = np.random.default_rng(0)
    X = rng.normal(size=(20_000, 10)).astype(np.float32)
    y = (X[:, 0] + X[:, 1] * X[:, 2] + rng.normal(size=len(X)) > 0).astype(int)
    booster = xgb.train({"objective": "binary:logistic", "max_depth": max_depth, "nthread": 1,
                         "min_child_weight": 0, "lambda": 0}, xgb.DMatrix(X, label=y), 20)
    document = json.loads(booster.save_raw("json"))
    model = document["learner"]["gradient_booster"]["model"]
    trees = model["trees"]
    if n_trees is None:
        per_tree = len(json.dumps(trees, separators=(",", ":"))) / len(trees)
        n_trees = int(megabytes * MIB / per_tree)
    model["trees"] = [{**trees[i % len(trees)], "id": i} for i in range(n_trees)]
    model["tree_info"] = [0] * n_trees
    model["iteration_indptr"] = list(range(n_trees + 1))
    model["gbtree_model_param"]["num_trees"] = str(n_trees)
    return json.dumps(document, separators=(",", ":")).encode()


def _skeleton(element: bytes, megabytes: int) -> bytes:
    """A JSON object whose learner holds a list of ``element`` repeated to about ``megabytes`` MB."""
    return b'{"learner":{"x":[' + element * (megabytes * MIB // len(element)) + b'{}]}}'


def _lightgbm_trees(megabytes: int) -> bytes:
    """A LightGBM binary model of 20 trained trees of 127 leaves repeated to about ``megabytes`` MB."""
    import lightgbm

    rng = np.random.default_rng(0)
    X = rng.normal(size=(5_000, 10))
    y = (X[:, 0] + X[:, 1] * X[:, 2] + rng.normal(size=len(X)) > 0).astype(int)
    text = lightgbm.train({"objective": "binary", "num_leaves": 127, "min_data_in_leaf": 2, "verbose": -1,
                           "num_threads": 1}, lightgbm.Dataset(X, label=y), 20).model_to_string()
    head, trees, tail = re.match(r"(.*?)(Tree=0\n.*?)(end of trees.*)", re.sub(r"tree_sizes=.*\n", "", text),
                                 re.S).groups()
    blocks = re.split(r"Tree=\d+\n", trees)[1:]
    n_trees = int(megabytes * MIB * len(blocks) / len(trees))
    return (head + "".join(f"Tree={i}\n{blocks[i % len(blocks)]}" for i in range(n_trees)) + tail).encode()


SHAPES = {
    "xgboost-json-deep-trees-40MB": (lambda: _xgboost_trees(10, megabytes=40), "read"),
    "xgboost-json-30000-stumps": (lambda: _xgboost_trees(1, n_trees=30_000), "read"),
    "ubjson-nulls-16MB": (lambda: b"{L" + struct.pack(">q", 7) + b"learner[" + b"Z" * (16 * MIB) + b"]}", "refused"),
    "ubjson-integers-16MB": (lambda: b"{L" + struct.pack(">q", 7) + b"learner[" + b"I\x10\x00" * (16 * MIB // 3)
                             + b"]}", "refused: UBJSON: the file holds far more values"),
    "ubjson-alternating-integers-16MB": (lambda: b"{L" + struct.pack(">q", 7) + b"learner["
                                         + b"I\x10\x00l\x00\x01\x00\x00" * (16 * MIB // 8) + b"]}",
                                         "refused: UBJSON: the file holds far more values"),
    "ubjson-empty-lists-16MB": (lambda: b"{L" + struct.pack(">q", 7) + b"learner[" + b"[]" * (8 * MIB) + b"]}",
                                "refused: UBJSON: the file holds far more values"),
    "ubjson-short-strings-16MB": (lambda: b"{L" + struct.pack(">q", 7) + b"learner["
                                  + b"Si\x02ab" * (16 * MIB // 5) + b"]}",
                                  "refused: the file's arrays hold more strings than the names and types of 10,000"),
    "ubjson-distinct-keys-16MB": (lambda: b"{L" + struct.pack(">q", 7) + b"learner{"
                                  + b"".join(b"i\x06" + b"%06x" % i + b"Z" for i in range(16 * MIB // 9)) + b"}}",
                                  "refused: UBJSON: the file holds far more values"),
    "json-arrays-of-arrays-16MB": (lambda: _skeleton(b"[1],", 16), "refused: XGBoost JSON model: an array of arrays"),
    "json-empty-objects-16MB": (lambda: _skeleton(b"{},", 16), "refused: XGBoost JSON model: more than"),
    "json-objects-of-one-array-16MB": (lambda: _skeleton(b'{"a":[1]},', 16), "refused: XGBoost JSON model: more than"),
    "json-lists-of-a-string-16MB": (lambda: _skeleton(b'[""],', 16), "refused: XGBoost JSON model: more than"),
    "json-numbers-16MB": (lambda: _skeleton(b"1.5,", 16), "refused: XGBoost JSON model: more than"),
    "lightgbm-short-lines-16MB": (lambda: b"tree\n" + b"ab\n" * (16 * MIB // 3), "refused: LightGBM model: more than"),
    "lightgbm-8-byte-lines-16MB": (lambda: b"tree\n" + b"abcdefg\n" * (16 * MIB // 8 - 10),
                                   "refused: LightGBM model: the file holds no tree"),
    "lightgbm-astral-line-8MB": (lambda: b"tree\nversion=v4\n" + "\U0001F600".encode() + b"a" * (8 * MIB) + b"\n",
                                 "refused: LightGBM model: the file holds no tree"),
    "lightgbm-trees-16MB": (lambda: _lightgbm_trees(16), "read"),
}


@pytest.mark.parametrize("shape", SHAPES)
def test_a_hostile_file_is_read_within_twice_its_size(tmp_path, shape):
    make, expected = SHAPES[shape]
    data = make()
    peak, outcome = _peak(tmp_path, data)
    assert peak <= 2 * len(data), f"{shape}: {peak / MIB:.0f} MB above the file for {len(data) / MIB:.0f} MB"
    assert outcome.startswith(expected), outcome
