"""XGBoost's JSON model files read in one pass, with memory bounded by the file, never by what it holds.

The json module builds a Python object for every number (a 229 MB file took 1.5 GB), so the file is cut in
two first. One regular expression (linear: every quantifier is possessive, and a string runs to its closing
quote or to the end of the file) finds every flat array, one holding no string, array or object: the
arrays of every tree, ``tree_info`` and a few small ones. Each is left in the file's bytes and replaced by a
placeholder in the skeleton that remains, a few hundred bytes a tree, which the json module parses. Each
tree's object is taken out as the parser finishes it (``object_hook``): the places of its arrays are noted,
the rest let go. Then each field the walk needs is read by NumPy for all trees at once, after its values
are counted against the trees' lengths: nothing is built for an array before its size is known, and the
arrays no walk needs (``base_weights``, ``parents`` …) are never read.

Each placeholder is a ``NaN``, which the json module hands to ``parse_constant`` in the file's order, so the
n-th stands for the n-th array: a ``NaN`` or ``Infinity`` of the file's own outside an array (which XGBoost
never writes) is refused by the count, and inside an array the walk reads, like any character that is not
part of a number. Numbers are read by NumPy, correctly rounded as the json module reads them.

The skeleton is parsed into Python objects, 60 to 90 bytes a value, so it is bounded before it is parsed: at most
100,000 values and one for every 8 bytes of the file, and no array of arrays (XGBoost writes none; each would
be a placeholder kept in a list).
"""
from __future__ import annotations

import json
import re
import warnings
from array import array

import numpy as np

from registry.artifacts.loading.xgboost_trees import FIELDS, TreeMark, Trees, compact
from registry.errors import InvalidArtifact

# A skeleton holds a few values a tree (one for 13 bytes of a file of stumps) and a name a feature (one for 12
# bytes of a file of names); past this, or past one for every 8 bytes, it holds something else, which the json
# module would build at 60 to 90 bytes a value.
MAX_SKELETON_VALUES = 10_000_000
SKELETON_VALUES_PER_BYTE = 1 / 8
# Atomic groups and possessive repeats, so that nothing is kept to backtrack to (a plain `*` kept 2.6 GB
# for a 39 MB file of 3 million names). A possessive repeat of one character class inside a possessive
# repeat of a group is what Python 3.11.2 (Debian bookworm's, the image's) matches wrongly: runs are
# atomic groups instead, which split 3,000 mutated model files there as 3.11.7 splits them
# (tests/e2e/test_container_image.py serves XGBoost files from the image).
_STRING = rb'"(?>[^"\\]+|\\(?:[\s\S]|\Z))*+(?:"|\Z)'
_FLAT_BODY = rb'[^\[\]{}"]*+\]'
# Everything up to the next flat array (strings, runs of other characters, opening brackets that do not
# begin a flat array), then that array, or the end of the file.
_NEXT_ARRAY = re.compile(rb'((?>[^"\[]+|' + _STRING + rb'|\[(?!' + _FLAT_BODY + rb'))*+)(\[' + _FLAT_BODY
                         + rb'|\Z)')
_PLACEHOLDER = b"NaN"  # the json module hands each to parse_constant, in order
_CHARACTERS = {np.int64: b"0123456789+-, \t\r\n", np.float64: b"0123456789.eE+-, \t\r\n"}
_OPTIONAL = ("split_type", "sum_hessian")
# What comes before an array that is an element of a list (after a field's name comes ':').
_IN_A_LIST = frozenset(b"[,")
_WHITESPACE = frozenset(b" \t\r\n")


def loads(data: bytes, max_trees: int) -> tuple[dict, Trees | None]:
    """The document ``data`` holds, each tree's object replaced by a marker (``xgboost_trees.check_trees``), each flat
    array outside the trees by a list (``tree_info`` read, any other left empty), and the trees' arrays (None
    when it holds no tree; refused past ``max_trees``). Raises ``InvalidArtifact`` naming what is wrong."""
    small = len(data) < 2**32
    starts = array("I" if small else "q")  # where each array's values start: four bytes each where they fit
    skeleton = bytearray()
    for match in _NEXT_ARRAY.finditer(data):
        skeleton += match.group(1)
        if match.end(2) > match.start(2):
            if _last_character(skeleton) in _IN_A_LIST:
                raise InvalidArtifact(f"XGBoost JSON model: an array of arrays at byte {match.start(2)}, which "
                                      "XGBoost never writes (every array of numbers is an object's field)")
            skeleton += _PLACEHOLDER
            starts.append(match.start(2) + 1)
    bound = min(MAX_SKELETON_VALUES, 100_000 + int(len(data) * SKELETON_VALUES_PER_BYTE))
    if skeleton.count(b",") + skeleton.count(b":") + skeleton.count(b"{") > bound:
        raise InvalidArtifact(f"XGBoost JSON model: more than {bound:,} values outside its trees' arrays (100,000 "
                              "and one for every 8 bytes of the file), far more than any model holds")
    try:
        text = skeleton.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidArtifact("XGBoost JSON model: the file is not UTF-8 text") from None
    del skeleton
    reader = _Reader(data, np.frombuffer(starts, dtype=np.uint32 if small else np.int64), max_trees)
    try:
        document = json.loads(text, object_hook=reader.hook, parse_constant=reader.placeholder)
    except (ValueError, RecursionError) as error:
        raise InvalidArtifact(f"XGBoost JSON model: not valid JSON ({type(error).__name__}: {error})"[:300]) \
            from None
    del text  # before the trees' arrays are read
    if reader.placeholders != len(reader.starts):
        raise InvalidArtifact("XGBoost JSON model: NaN is not a number XGBoost writes")
    return document, reader.trees()


class _Flat:
    """Where a flat array was in the skeleton: the ``index``-th of the file."""
    __slots__ = ("index",)

    def __init__(self, index: int):
        self.index = index


def _span(value) -> int | None:
    """The flat array a placeholder stands for; None for any other value."""
    return value.index if isinstance(value, _Flat) else None


class _Reader:
    """Collects each tree's arrays as the json module finishes its object."""

    def __init__(self, data: bytes, starts: np.ndarray, max_trees: int):
        self.data, self.starts, self.max_trees = data, starts, max_trees
        self.fields: dict[str, array] = {field: array("q") for field in FIELDS}
        self.count = self.placeholders = 0

    def placeholder(self, name: str) -> _Flat:
        """The flat array the ``index``-th ``NaN`` of the skeleton stands for: the json module reads them in the
        file's order. Any other constant (``Infinity``) is refused, and a ``NaN`` the file held itself is
        caught by the count."""
        if name != "NaN" or self.placeholders >= len(self.starts):
            raise InvalidArtifact(f"XGBoost JSON model: {name} is not a number XGBoost writes")
        self.placeholders += 1
        return _Flat(self.placeholders - 1)

    def hook(self, value: dict):
        """What the skeleton keeps of an object: a marker for a tree's, the object itself for any other."""
        if "left_children" not in value:
            for key, item in value.items():
                value[key] = self.outside(key, item)
            return value
        for field, spans in self.fields.items():
            index = _span(value.get(field))
            if index is None and (field not in _OPTIONAL or field in value):
                raise InvalidArtifact(f"XGBoost model: a tree's {field!r} is missing or not a list of numbers")
            spans.append(-1 if index is None else index)
        self.count += 1
        if self.count > self.max_trees:
            raise InvalidArtifact(f"XGBoost model: more than {self.max_trees:,} trees")
        return TreeMark(self.count - 1)

    def outside(self, key: str, item):
        """A value of an object other than a tree's: ``tree_info`` read as integers, another flat array left
        empty (none is needed), anything else as it is."""
        index = _span(item)
        if index is None:
            return item
        if key != "tree_info":
            return []
        start, end = self.bodies(np.array([index]))[0]
        if self.data.count(b",", start, end) >= self.max_trees:
            raise InvalidArtifact(f"XGBoost model: more than {self.max_trees:,} trees")
        return _parse(self.data[start:end], np.int64).tolist()

    def trees(self) -> Trees | None:
        """Every tree's arrays, each field read for all trees at once."""
        if not self.count:
            return None
        fields = {name: np.frombuffer(spans, dtype=np.int64) for name, spans in self.fields.items()}
        sizes = _counts(self.data, self.bodies(fields["left_children"]))
        if (sizes == 0).any():
            raise InvalidArtifact("XGBoost model: a tree's node arrays are empty or of different lengths")
        arrays = {}
        for field, chosen in fields.items():
            if field in _OPTIONAL and (chosen < 0).any():
                if field == "split_type" and not (chosen < 0).all():
                    raise InvalidArtifact("XGBoost model: some trees have a 'split_type' and others none")
                arrays[field] = None if field == "sum_hessian" else np.zeros(int(sizes.sum()), dtype=bool)
                continue
            ranges = self.bodies(chosen)
            if (_counts(self.data, ranges) != sizes).any():
                if field == "sum_hessian":  # a tree without a cover for each node: none is explained
                    arrays[field] = None
                    continue
                raise InvalidArtifact("XGBoost model: a tree's node arrays are empty or of different lengths")
            dtype = np.float64 if field in ("split_conditions", "sum_hessian") else np.int64
            text = b",".join([self.data[start:end] for start, end in ranges])
            arrays[field] = compact(FIELDS[field], _parse(text, dtype))
            del text
        return Trees(sizes=sizes, **{FIELDS[field]: value for field, value in arrays.items()})

    def bodies(self, indices: np.ndarray) -> list[tuple[int, int]]:
        """Where the values of each flat array ``indices`` names are: from its ``[`` to its ``]``, the first after
        it (a flat array holds no other bracket)."""
        return [(start, self.data.index(b"]", start)) for start in self.starts[indices].tolist()]


def _last_character(skeleton: bytearray) -> int | None:
    """The skeleton's last character that is not whitespace (None when there is none)."""
    at = len(skeleton) - 1
    while at >= 0 and skeleton[at] in _WHITESPACE:
        at -= 1
    return skeleton[at] if at >= 0 else None


def _counts(data: bytes, ranges: list[tuple[int, int]]) -> np.ndarray:
    """How many values each array at ``ranges`` (the bytes between its brackets) holds."""
    counts = np.empty(len(ranges), dtype=np.int64)
    for i, (start, end) in enumerate(ranges):
        commas = data.count(b",", start, end)
        counts[i] = commas + 1 if commas or data[start:end].strip() else 0
    return counts


def _parse(text: bytes, dtype) -> np.ndarray:
    """The comma-separated numbers ``text`` holds, read by NumPy; refused where any is not a number (an
    integer for ``np.int64``)."""
    if not text.strip():
        return np.zeros(0, dtype=dtype)
    kind = "an integer" if dtype is np.int64 else "a number"
    if text.translate(None, _CHARACTERS[dtype]):
        raise InvalidArtifact(f"XGBoost model: an array holds something that is not {kind}")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # NumPy warns, and stops, where text does not read to its end
        try:
            values = np.fromstring(text, dtype=dtype, sep=",")
        except (ValueError, OverflowError, DeprecationWarning):
            raise InvalidArtifact(f"XGBoost model: an array holds something that is not {kind}") from None
    if len(values) != text.count(b",") + 1:
        raise InvalidArtifact(f"XGBoost model: an array holds something that is not {kind}")
    return values
