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

import codecs
import collections
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
_UTF8_CHUNK = 1 << 20
_MAX_TREE_KEYS = 22  # Tree::ToString writes fewer
# The file is searched as bytes: a line with a second '=' (quickly, then where its key is not one of the two whose
# values may hold one), each header line the reader uses (the key alone or followed by '=', after a line break,
# which the search finds quickly, or first in the file), blank lines.
_TWO_EQUALS_FAST = re.compile(rb"=[^\n=]*=")
_TWO_EQUALS = re.compile(rb"(?m)^(?!(?:feature_names|monotone_constraints)=)[^\n=]*=[^\n=]*=")
_HEADER_LINES = {key: (re.compile(rb"\n" + key.encode() + rb"(?:=([^\n]*)|\r*(?![^\n]))"),
                       re.compile(key.encode() + rb"(?:=([^\n]*)|\r*(?![^\n]))"))
                 for key in ("num_class", "num_tree_per_iteration", "max_feature_idx", "feature_names",
                             "feature_infos", "average_output", "objective", "tree_sizes")}
_BLANK_LINE = re.compile(rb"\n\r*(?=\n|\Z)")
_BLANK_LINES = re.compile(rb"\n(?:\r*\n)*")
_END_OF_TREES = re.compile(rb"end of trees\r*(?:\n|\Z)")
_LAST_VISIBLE = re.compile(rb"\S\s*\Z")


def is_lightgbm(head: bytes) -> bool:
    """Whether a file's first bytes look like a LightGBM model text file's: its first line is ``tree``;
    no pickle, joblib, zip or JSON file starts so."""
    return head.startswith((b"tree\n", b"tree\r\n"))


def read_lightgbm(data: bytes, classes: list | None = None) -> tuple[CompiledBoosting, list[str] | None]:
    """The compiled form of the LightGBM model ``data`` (text bytes) and its feature names (None where they are
    LightGBM's defaults); ``classes`` name a classifier's classes (``0 … k-1`` when None). Raises
    ``InvalidArtifact`` naming what is wrong. The file is read in place, one tree at a time: its lines are never
    all made into strings at once (each would cost 50 bytes and more), nor its text decoded whole."""
    bound = 100_000 + int(len(data) * LINES_PER_BYTE)
    if data.count(b"\n") > bound:
        raise InvalidArtifact(f"LightGBM model: more than {bound:,} lines (100,000 and one for every 8 bytes of the "
                              "file), far more than LightGBM writes")
    _check_utf8(data)
    header, first_tree = _header(data)
    n_features, n_outputs, link, scale, names = _model(header)
    starts, trailer = _tree_starts(data, first_tree, header.get("tree_sizes"))
    if len(starts) % n_outputs:
        raise InvalidArtifact(f"LightGBM model: {len(starts)} trees are not a whole number of iterations of "
                              f"{n_outputs} trees")
    _refuse_pandas_categories(data, trailer)
    nodes, values, roots, bitsets, cover = _records(data, starts, n_features)
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
        nodes=nodes, roots=roots, columns=(np.arange(len(starts)) % n_outputs).astype(np.int32), value=values,
        bitsets=bitsets, baseline=np.zeros(n_outputs), n_features=n_features, float32_rows=False,
        categorical_columns=np.zeros(0, dtype=np.int64), categories=[], codes=[], link=link,
        classes=None if n_classes is None else np.asarray(classes), zero_is_positive=False, fortran_raw=False,
        lightgbm_rows=True, link_scale=scale, cover=cover)
    defaults = [f"Column_{i}" for i in range(n_features)]
    return form, (None if names == defaults else names)


def _check_utf8(data: bytes) -> None:
    """Refuses ``data`` unless it is UTF-8, decoded a chunk at a time (one character past Latin-1 would make the
    whole text four bytes a character) and let go: the parts the reader needs are decoded alone."""
    if data.isascii():
        return
    decoder, view = codecs.getincrementaldecoder("utf-8")(), memoryview(data)
    try:
        for at in range(0, len(data), _UTF8_CHUNK):
            decoder.decode(view[at:at + _UTF8_CHUNK])
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        raise InvalidArtifact("LightGBM model: the file is not UTF-8 text") from None


def _header(data: bytes) -> tuple[dict[str, bytes], int]:
    """The values of the header's ``key=value`` lines the reader uses (the last of a key's lines counts, a key
    without ``=`` is empty) and where the trees start, found by searching the bytes (never split into lines)."""
    end = 0 if data.startswith(b"Tree=") else data.find(b"\nTree=") + 1 or len(data)
    fast = _TWO_EQUALS_FAST.search(data, 0, end)
    twice = fast and _TWO_EQUALS.search(data, data.rfind(b"\n", 0, fast.start()) + 1, end)
    if twice:
        line = data[twice.start():twice.start() + 320].split(b"\n", 1)[0].rstrip(b"\r")
        raise InvalidArtifact(f"LightGBM model: a header line has more than one '=': "
                              f"{line.decode('utf-8', 'ignore')[:80]!r}")
    header = {}
    for key, (after_break, first) in _HEADER_LINES.items():
        last = collections.deque(after_break.finditer(data, 0, end), maxlen=1) or [first.match(data, 0, end)]
        if last[0]:  # the last line of the key counts
            value = last[0].group(1)
            header[key] = b"" if value is None else value.rstrip(b"\r")
    if end == len(data):
        raise InvalidArtifact("LightGBM model: the file holds no tree (no line 'Tree=')")
    return header, end


def _model(header: dict[str, bytes]) -> tuple[int, int, str, float, list[str]]:
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
    if not header["feature_names"].count(b" ") + 1 == header["feature_infos"].count(b" ") + 1 == n_features:
        raise InvalidArtifact(f"LightGBM model: feature_names and feature_infos must each name {n_features} features")
    names = [name.decode() for name in header["feature_names"].split(b" ")]  # counted first: at most MAX_FEATURES
    objective = header.get("objective", b"")
    # At most four bytes a character: a line too long in bytes is refused before it is decoded.
    if len(objective) > 4 * MAX_OBJECTIVE_CHARACTERS or len(objective.decode()) > MAX_OBJECTIVE_CHARACTERS:
        raise InvalidArtifact(f"LightGBM model: the objective line is longer than {MAX_OBJECTIVE_CHARACTERS:,} "
                              "characters, far longer than LightGBM writes")
    objective, *parameters = objective.decode().split(" ")
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


def _tree_starts(data: bytes, start: int, tree_sizes: bytes | None) -> tuple[list[int], int]:
    """Where each tree's ``Tree=`` line starts, from ``start`` to ``end of trees``, and where the lines after it
    start; each tree's lines are checked (``_tree_lines``) and let go. Where the header gives ``tree_sizes`` (the
    bytes LightGBM reads each tree from), each tree must be exactly that long."""
    starts, position = [], start
    while data.startswith(b"Tree=", position):
        starts.append(position)
        if len(starts) > MAX_TREES:
            raise InvalidArtifact(f"LightGBM model: more than {MAX_TREES} trees")
        _, end = _tree_lines(data, position, len(starts) - 1)
        position = _BLANK_LINES.match(data, end).end() if end < len(data) else end
    trees_end = _END_OF_TREES.match(data, position)
    if trees_end is None:
        raise InvalidArtifact("LightGBM model: the trees do not end with 'end of trees' (a truncated file?)")
    if tree_sizes is not None:
        n_declared = tree_sizes.count(b" ") + 1 if tree_sizes else 0
        declared = [read_int(part, "tree_sizes") for part in tree_sizes.split(b" ")] \
            if tree_sizes and n_declared == len(starts) else []  # counted first: at most one a tree
        if n_declared != len(starts) or declared != np.diff(starts + [position]).tolist():
            raise InvalidArtifact(f"LightGBM model: tree_sizes declares {n_declared} trees, the file holds "
                                  f"{len(starts)} of other sizes")
    return starts, trees_end.end()


def _tree_lines(data: bytes, start: int, index: int) -> tuple[dict[bytes, tuple[int, int]], int]:
    """Where each ``key=value`` line of the tree whose ``Tree=`` line starts at ``start`` has its value (by key),
    and where its block ends (its last line's end): its lines up to the first blank one (or the file's end)."""
    line_end = data.find(b"\n", start)
    if line_end < 0:
        return {}, len(data)
    blank = _BLANK_LINE.search(data, line_end)
    end = len(data) if blank is None else blank.start()
    if data.count(b"\n", line_end + 1, end) >= _MAX_TREE_KEYS:
        raise InvalidArtifact(f"LightGBM model: tree {index} has a malformed line or a key twice")
    lines, position = {}, line_end + 1
    while position < end:
        stop = data.find(b"\n", position, end)
        stop = end if stop < 0 else stop
        equals = data.find(b"=", position, stop)
        if equals < 0 or data[position:equals] in lines:
            raise InvalidArtifact(f"LightGBM model: tree {index} has a malformed line or a key twice")
        lines[data[position:equals]] = (equals + 1, stop)  # the value, with the line's \r at its end if any
        position = stop + 1
    return lines, end


def _refuse_pandas_categories(data: bytes, trailer: int) -> None:
    """Refuses a model whose last line (after ``end of trees``, at ``trailer``) names pandas' categories."""
    last = _LAST_VISIBLE.search(data, trailer)
    if last is None:
        return
    line_start = data.rfind(b"\n", trailer, last.start()) + 1 or trailer
    line = data[line_start:last.start() + 1].strip()
    if line.startswith(b"pandas_categorical:") and line[len(b"pandas_categorical:"):].strip() not in (b"null", b"[]"):
        raise InvalidArtifact("LightGBM model: trained on pandas category columns (pandas_categorical), which are "
                              "not served: train on their integer codes instead")


def _records(data: bytes, starts: list[int], n_features: int):
    """Every tree's nodes renumbered from its root as wide records, their leaf values, the roots, the sets and the
    nodes' covers (their counts; None unless every tree records counts that add up). Each tree's text is read from
    ``data`` when its turn comes and let go once its tree is read, so that the text of one tree at most is held."""
    records, values, roots, bitsets, covers, total, offset = [], [], [], [], [], 0, 0
    for index, start in enumerate(starts):
        lines, _ = _tree_lines(data, start, index)
        tree = TreeBlock({key: data[begin:end].rstrip(b"\r") for key, (begin, end) in lines.items()}, index,
                         n_features=n_features, max_leaves=MAX_NODES)
        total += 2 * tree.n_leaves - 1
        if total > MAX_NODES:
            raise InvalidArtifact(f"LightGBM model: more than {MAX_NODES} nodes")
        part, leaf_values, sets, counts = tree.records(offset=offset, first_block=len(bitsets))
        del tree
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
