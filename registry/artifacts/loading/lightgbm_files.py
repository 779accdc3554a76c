"""LightGBM models saved with ``save_model`` (text), read without LightGBM into a ``CompiledBoosting``.

The file (``GBDT::SaveModelToString``, ``Tree::ToString``) is a header of ``key=value`` lines, then one
block per tree (``Tree=i`` and its arrays), ``end of trees``, feature importances, the parameters and
the Python package's ``pandas_categorical`` line. ``Booster(model_file=...).predict`` reads a dense row
with every value within ``kZeroThreshold`` (``1e-35f``) of zero as zero, walks each tree from node 0
(a child ``c < 0`` is the leaf ``~c``) and adds the leaves' values to 0.0 in tree order in float64,
tree ``t`` to output ``t % num_tree_per_iteration``. A numeric node goes left where ``x <= threshold``,
but a NaN is a zero unless the node's missing type is NaN, and a missing value (a NaN for type NaN, a
zero or NaN for type Zero) goes where ``default_left`` says. A categorical node goes left where the bit
``int(x)`` of its set (``cat_threshold`` between two ``cat_boundaries``) is set, right for a NaN, a
negative value or one past the set. Then the objective's ``ConvertOutput`` (``tree_walk.lightgbm_link``).

An early-stopped model is saved with its best iteration's trees only, and a loaded Booster uses every tree
in its file: so does this. Thresholds and leaf values are read as LightGBM reads them (correctly rounded),
the sigmoid's parameter with LightGBM's own ``Common::Atof``. Linear trees, ``average_output`` (random
forest mode), other objectives and pandas' categorical columns are refused by name; every tree is
renumbered from its root (parents before children), which also refuses children outside the tree, cycles
and shared nodes; every count the file declares is checked against what it holds.

Each node's count of training rows (``internal_count``, ``leaf_count``) is its cover for TreeSHAP
(``CompiledBoosting.explain``), as LightGBM's own ``pred_contrib=True`` weighs it (``Tree::TreeSHAP`` takes
``data_count``), and the explainer decides every split by the walker's own rule: the explanations are
``pred_contrib``'s. Counts that are there must be as many integers from 0 to 2^31 - 1 as the tree has nodes
of their kind; a file with a tree of several leaves without them, or whose counts do not add up (an internal
node's is its children's sum, as ``Tree::Split`` writes it), is served but not explained.
"""
from __future__ import annotations

import re

import numpy as np

from registry.errors import InvalidArtifact
from registry.inference.fast_boosting import CompiledBoosting
from registry.artifacts.loading.lightgbm_trees import TreeBlock, read_int
from registry.inference.tree_walk import BITSET_WORDS

MAX_TREES = 100_000
MAX_NODES = 20_000_000
MAX_FEATURES = 1_000_000
MAX_CLASSES = 10_000
_CLASSIFIERS = {"binary": "lightgbm_sigmoid", "multiclass": "lightgbm_softmax", "multiclassova": "lightgbm_ova"}
_REGRESSORS = {"regression": "lightgbm_identity", "regression_l1": "lightgbm_identity", "huber": "lightgbm_identity",
               "fair": "lightgbm_identity", "quantile": "lightgbm_identity", "mape": "lightgbm_identity",
               "poisson": "lightgbm_exp", "gamma": "lightgbm_exp", "tweedie": "lightgbm_exp",
               "cross_entropy": "lightgbm_logistic"}
_ATOF = re.compile(r"([0-9]*)(?:\.([0-9]*))?(?:[eE]([+-]?)([0-9]*))?")
MAX_NUMBER_CHARACTERS = 64  # an objective's parameter LightGBM writes is far shorter (``sigmoid:1``)
MAX_OBJECTIVE_CHARACTERS = 65_536
# LightGBM writes a line for 15 bytes or more (a tree's arrays, feature importances); each line is a Python
# string of 50 bytes and more, so a file of short lines is refused before they are made.
LINES_PER_BYTE = 1 / 8


def is_lightgbm(head: bytes) -> bool:
    """Whether a file's first bytes look like a LightGBM model text file's: its first line is ``tree``;
    no pickle, joblib, zip or JSON file starts so."""
    return head.startswith((b"tree\n", b"tree\r\n"))


def read_lightgbm(data: bytes, classes: list | None = None) -> tuple[CompiledBoosting, list[str] | None]:
    """The compiled form of the LightGBM model ``data`` (text bytes) and its feature names (None where they are
    LightGBM's defaults); ``classes`` name a classifier's classes (``0 … k-1`` when None). Raises
    ``InvalidArtifact`` naming what is wrong."""
    bound = 100_000 + int(len(data) * LINES_PER_BYTE)
    if data.count(b"\n") > bound:
        raise InvalidArtifact(f"LightGBM model: more than {bound:,} lines (100,000 and one for every 8 bytes of the "
                              "file), far more than LightGBM writes")
    try:
        lines = _lines(data)
    except UnicodeDecodeError:
        raise InvalidArtifact("LightGBM model: the file is not UTF-8 text") from None
    header, first_tree = _header(lines)
    n_features, n_outputs, link, scale, names = _model(header)
    blocks, trailer = _tree_blocks(lines, first_tree, header.get("tree_sizes"))
    del lines  # the blocks hold what the trees need
    if not blocks or len(blocks) % n_outputs:
        raise InvalidArtifact(f"LightGBM model: {len(blocks)} trees are not a whole number of iterations of "
                              f"{n_outputs} trees")
    _refuse_pandas_categories(trailer)
    nodes, values, roots, bitsets, cover = _records(blocks, n_features)
    n_classes = None if link not in _CLASSIFIERS.values() else max(n_outputs, 2)
    if n_classes is None and classes is not None:
        raise InvalidArtifact("the metadata names classes, but the LightGBM model is a regressor: leave classes out")
    if n_classes is not None:
        classes = list(range(n_classes)) if classes is None else classes
        if (not isinstance(classes, list) or len(classes) != n_classes or len(set(map(repr, classes))) != n_classes
                or not all(isinstance(c, (str, int)) and not isinstance(c, bool) for c in classes)):
            raise InvalidArtifact(f"the metadata's classes must be {n_classes} distinct strings or integers, "
                                  "one per class of the model")
    form = CompiledBoosting(
        nodes=nodes, roots=roots, columns=(np.arange(len(blocks)) % n_outputs).astype(np.int32), value=values,
        bitsets=bitsets, baseline=np.zeros(n_outputs), n_features=n_features, float32_rows=False,
        categorical_columns=np.zeros(0, dtype=np.int64), categories=[], codes=[], link=link,
        classes=None if n_classes is None else np.asarray(classes), zero_is_positive=False, fortran_raw=False,
        lightgbm_rows=True, link_scale=scale, cover=cover)
    defaults = [f"Column_{i}" for i in range(n_features)]
    return form, (None if names == defaults else names)


def _lines(data: bytes) -> list[str]:
    """The file's lines, as ``str.split("\\n")`` cuts its text, each decoded alone (one character past Latin-1
    would make the whole text four bytes a character) in place of its bytes (never both copies of the file)."""
    lines = data.split(b"\n")
    for number, line in enumerate(lines):
        lines[number] = line.decode("utf-8")
    return lines


def _header(lines: list[str]) -> tuple[dict[str, str], int]:
    """The header's ``key=value`` lines (as ``GBDT::LoadModelFromString`` reads them) and where the trees start."""
    header: dict[str, str] = {}
    for number, line in enumerate(lines):
        line = line.rstrip("\r")
        if line.startswith("Tree="):
            return header, number
        if not line:
            continue
        key, equals, value = line.partition("=")
        if "=" in value and key not in ("feature_names", "monotone_constraints"):
            raise InvalidArtifact(f"LightGBM model: a header line has more than one '=': {line[:80]!r}")
        header[key] = value if equals else ""
    raise InvalidArtifact("LightGBM model: the file holds no tree (no line 'Tree=')")


def _model(header: dict[str, str]) -> tuple[int, int, str, float, list[str]]:
    """The model's width, outputs, link, the sigmoid's parameter and feature names, from its header."""
    for key in ("num_class", "max_feature_idx", "feature_names", "feature_infos"):
        if key not in header:
            raise InvalidArtifact(f"LightGBM model: the header has no {key}")
    if "average_output" in header:
        raise InvalidArtifact("LightGBM model: average_output (boosting=rf) is not served")
    n_classes = read_int(header["num_class"], "num_class")
    n_outputs = read_int(header.get("num_tree_per_iteration", header["num_class"]), "num_tree_per_iteration")
    n_features = read_int(header["max_feature_idx"], "max_feature_idx") + 1
    if not 0 < n_features <= MAX_FEATURES:
        raise InvalidArtifact(f"LightGBM model: max_feature_idx {n_features - 1} is not between 0 and "
                              f"{MAX_FEATURES - 1}")
    if not header["feature_names"].count(" ") + 1 == header["feature_infos"].count(" ") + 1 == n_features:
        raise InvalidArtifact(f"LightGBM model: feature_names and feature_infos must each name {n_features} features")
    names = header["feature_names"].split(" ")  # counted first: never more than MAX_FEATURES
    if len(header.get("objective", "")) > MAX_OBJECTIVE_CHARACTERS:
        raise InvalidArtifact(f"LightGBM model: the objective line is longer than {MAX_OBJECTIVE_CHARACTERS:,} "
                              "characters, far longer than LightGBM writes")
    objective, *parameters = header.get("objective", "").split(" ")
    link = _CLASSIFIERS.get(objective) or _REGRESSORS.get(objective)
    if link is None:
        raise InvalidArtifact(f"LightGBM objective {objective!r} is not served: use one of "
                              f"{sorted(_CLASSIFIERS) + sorted(_REGRESSORS)}")
    many = objective.startswith("multiclass")
    if many and not (2 <= n_classes <= MAX_CLASSES and n_outputs == n_classes) \
            or not many and not n_classes == n_outputs == 1:
        raise InvalidArtifact(f"LightGBM model: num_class {n_classes} and num_tree_per_iteration {n_outputs} do not "
                              f"fit the objective {objective}")
    options = dict(part.partition(":")[::2] for part in parameters)
    if objective == "regression" and "sqrt" in parameters:
        link = "lightgbm_square"
    scale = 1.0
    if objective in ("binary", "multiclassova"):
        scale = _atof(options.get("sigmoid", ""))
        if not scale > 0 or not np.isfinite(scale):
            raise InvalidArtifact(f"LightGBM model: the objective's sigmoid {options.get('sigmoid', '')[:40]!r} is "
                                  f"not a positive number of at most {MAX_NUMBER_CHARACTERS} characters")
    return n_features, n_outputs, link, scale, names


def _tree_blocks(lines: list[str | None], start: int, tree_sizes: str | None) -> tuple[list[dict[str, str]], list[str]]:
    """Each tree's ``key=value`` lines from ``start`` to ``end of trees``, and the lines after it. Where the header
    gives ``tree_sizes`` (the bytes LightGBM reads each tree from), each tree must be exactly that long. Each
    ``key=value`` line is let go (None in ``lines``) once its value is in its tree's block."""
    blocks, starts, number = [], [], start
    position = sum(len(line.encode()) + 1 for line in lines[:start])
    while number < len(lines) and lines[number].rstrip("\r").startswith("Tree="):
        starts.append(position)
        block: dict[str, str] = {}
        position += len(lines[number].encode()) + 1
        number += 1
        while number < len(lines) and lines[number].rstrip("\r"):
            key, equals, value = lines[number].rstrip("\r").partition("=")
            if not equals or key in block or len(block) >= 22:
                raise InvalidArtifact(f"LightGBM model: tree {len(blocks)} has a malformed line or a key twice")
            block[key] = value
            position += len(lines[number].encode()) + 1
            lines[number] = None  # its value is in the block: the line is let go
            number += 1
        blocks.append(block)
        if len(blocks) > MAX_TREES:
            raise InvalidArtifact(f"LightGBM model: more than {MAX_TREES} trees")
        while number < len(lines) and not lines[number].rstrip("\r"):
            position += len(lines[number].encode()) + 1
            number += 1
    if number >= len(lines) or lines[number].rstrip("\r") != "end of trees":
        raise InvalidArtifact("LightGBM model: the trees do not end with 'end of trees' (a truncated file?)")
    if tree_sizes is not None:
        declared = [read_int(part, "tree_sizes") for part in tree_sizes.split(" ")] if tree_sizes else []
        if declared != np.diff(starts + [position]).tolist():
            raise InvalidArtifact(f"LightGBM model: tree_sizes declares {len(declared)} trees, the file holds "
                                  f"{len(blocks)} of other sizes")
    return blocks, lines[number + 1:]


def _refuse_pandas_categories(trailer: list[str]) -> None:
    last = next((line.strip() for line in reversed(trailer) if line.strip()), "")
    if last.startswith("pandas_categorical:") and last[len("pandas_categorical:"):].strip() not in ("null", "[]"):
        raise InvalidArtifact("LightGBM model: trained on pandas category columns (pandas_categorical), which are "
                              "not served: train on their integer codes instead")


def _records(blocks: list[dict[str, str]], n_features: int):
    """Every tree's nodes renumbered from its root as wide records, their leaf values, the roots, the sets and the
    nodes' covers (their counts; None unless every tree records counts that add up). Each block is let go (None in
    ``blocks``) once its tree is read, so that the text and the arrays of all trees are never held at once."""
    records, values, roots, bitsets, covers, total, offset = [], [], [], [], [], 0, 0
    for index, block in enumerate(blocks):
        blocks[index] = None
        tree = TreeBlock(block, index, n_features=n_features, max_leaves=MAX_NODES)
        del block
        total += 2 * tree.n_leaves - 1
        if total > MAX_NODES:
            raise InvalidArtifact(f"LightGBM model: more than {MAX_NODES} nodes")
        part, leaf_values, sets, counts = tree.records(offset=offset, first_block=len(bitsets))
        roots.append(offset)
        offset += len(part)
        records.append(part)
        values.append(leaf_values)
        bitsets.extend(sets)
        covers.append(counts)
    cover = None if any(c is None for c in covers) else np.ascontiguousarray(np.concatenate(covers))
    return (np.concatenate(records), np.ascontiguousarray(np.concatenate(values)), np.array(roots, dtype=np.int32),
            np.ascontiguousarray(np.array(bitsets, dtype=np.uint32).reshape(-1, BITSET_WORDS)), cover)


def _atof(text: str) -> float:
    """``text`` read as LightGBM's ``Common::Atof`` reads a number (the objective's parameters): digit by digit
    in double precision, which is not always the nearest double. NaN for anything else, and for a text longer
    than ``MAX_NUMBER_CHARACTERS`` (whose exponent could pass ``Atof``'s uint32, or Python's limit on digits)."""
    if len(text) > MAX_NUMBER_CHARACTERS:
        return float("nan")
    sign = -1.0 if text.startswith("-") else 1.0
    match = _ATOF.fullmatch(text[1:] if text[:1] in "+-" else text)
    if not text or match is None or not (match.group(1) or match.group(2)):
        return float("nan")
    value = 0.0
    for digit in match.group(1):
        value = value * 10.0 + int(digit)
    if match.group(2) is not None:
        right = 0.0
        for digit in match.group(2):
            right = int(digit) + right * 10.0
        value += right / _pow(10.0, len(match.group(2)))
    scale, exponent = 1.0, min(int(match.group(4) or 0) % 2**32, 308)  # Atof's exponent is a uint32
    for step, factor in ((50, 1e50), (8, 1e8), (1, 10.0)):
        while exponent >= step:
            scale *= factor
            exponent -= step
    return sign * (value / scale if match.group(3) == "-" else value * scale)


def _pow(base: float, power: int) -> float:
    """LightGBM's ``Common::Pow`` (squares and cubes, as it computes them)."""
    if power == 0:
        return 1.0
    if power % 2 == 0:
        return _pow(base * base, power // 2)
    if power % 3 == 0:
        return _pow(base * base * base, power // 3)
    return base * _pow(base, power - 1)
