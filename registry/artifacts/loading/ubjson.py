"""A bounded reader of UBJSON (the binary JSON XGBoost's ``save_model`` writes to ``.ubj``).

It reads the draft-12 markers XGBoost writes (objects, arrays, strongly typed arrays with ``$`` and
``#``, integers, float32/float64, strings, ``T``/``F``/``Z``) and nothing else. Every length
and count is checked against the bytes left before anything is built, nesting is bounded, and a
typed numeric array becomes one NumPy array read straight from the bytes (a view of them, big-endian as the file
holds them). An object's key followed by such an array's head is read as the same bytes were read at the same
place of the object before, when they match (every tree XGBoost writes has the same fields in the same order):
one step of Python a field of a tree, not a dozen (a file of 100,000 stumps took 8.8 s of CPU per 100 MB, now
4.4; ``bench/hostile_model_files.py --only xgb-ubj-stumps-100000``). Every other value is a Python
object, so their number is bounded too (``MAX_VALUES`` and one for every 8 bytes of the file, several
times what XGBoost writes; a number held in an array counts as four, a container as eight, for what they
build, which keeps a hostile file's arrays within 1.3 times its size): a file of a million nulls is refused
after as many steps as a model's worth, never after one step a byte. A run of constants, or of numbers of one
marker, in an array (XGBoost's ``tree_info``, a hostile file's nulls) is counted and read at once by NumPy, never
a step of Python a value.
Keys are kept once each, as the json module keeps them.
"""
from __future__ import annotations

import struct
from typing import Callable

import numpy as np

from registry.errors import ArtifactTooLarge, InvalidArtifact

MAX_DEPTH = 32
MAX_VALUES = 100_000  # and one more for every 8 bytes of the file
_FORMATS = {"i": ">b", "U": ">B", "I": ">h", "l": ">i", "L": ">q", "d": ">f", "D": ">d"}  # big-endian, as UBJSON
_NUMBERS = {ord(m): np.dtype(f) for m, f in _FORMATS.items()}
# Each number's reader and size; the integers' also read lengths and counts.
_SCALARS = {ord(m): (struct.Struct(f).unpack_from, struct.calcsize(f)) for m, f in _FORMATS.items()}
_INTEGERS = {marker: read for marker, read in _SCALARS.items() if _NUMBERS[marker].kind in "iu"}
_CONSTANTS = {ord("T"): True, ord("F"): False, ord("Z"): None}
_S, _C, _OPEN_ARRAY, _OPEN_OBJECT, _CLOSE_ARRAY, _CLOSE_OBJECT = (ord(m) for m in "SC[{]}")
_TYPED, _COUNTED = ord("$"), ord("#")
# What a run of values in an array may be, read at once: constants of any of their markers, or numbers of one
# marker, each of its fixed size after its marker.
_SIZES = {**{marker: 0 for marker in _CONSTANTS}, **{marker: size for marker, (_, size) in _SCALARS.items()}}
_IS_CONSTANT = np.isin(np.arange(256), list(_CONSTANTS))
_RECORDS = {marker: np.dtype([("marker", "u1"), ("value", dtype)]) for marker, dtype in _NUMBERS.items()}
# How a typed array of numbers begins (``[$``, its numbers' marker, ``#``, its count's marker): their type, and its
# count's reader and size.
_TYPED_NUMBERS = {bytes([_OPEN_ARRAY, _TYPED, kind, _COUNTED, marker]): (dtype, *_INTEGERS[marker])
                  for kind, dtype in _NUMBERS.items() for marker in _INTEGERS}
# What a value held in an array costs beyond one value (one for every 8 bytes of the file are allowed): a Python
# number and its place in the list are 32 to 40 bytes, an empty list or dict and its place 64 to 72; so what the
# arrays of a file hold stays within its size (5 times for numbers, 9 times for empty containers, counted as one).
_HELD = {**{marker: 3 for marker in _NUMBERS}, _OPEN_ARRAY: 7, _OPEN_OBJECT: 7}
# What a key not seen before costs: its bytes and its str kept once (``keys``), and its place in that dict and in its
# object's, about 200 bytes; a model names a few dozen, a hostile file millions (21 times its size, counted as one).
_NEW_KEY = 31
# The places of an object's fields, and the bytes of a key and its array's head, that ``fields`` remembers.
_PLACES, _HEAD_BYTES = 64, 128


def loads(data: bytes, object_hook: Callable[[dict], object] = lambda value: value, *,
          max_features: int | None = None) -> object:
    """The value ``data`` holds (dicts, lists, str, int, float, bool, None and NumPy arrays for typed
    numeric arrays), each dict replaced by what ``object_hook`` makes of it once read, as the json module's
    hook does; raises ``InvalidArtifact`` naming what is wrong for anything else. With ``max_features``
    (``MAX_FEATURES``), the strings held in arrays are at most two for each feature (XGBoost writes them only for
    its features' names and types): a string of a few bytes is over ten times their size in memory, so a file of
    them would pass the values' bound at several times its size. More is ``ArtifactTooLarge``."""
    reader = _Reader(bytes(data), object_hook, max_features)
    value = reader.value(reader.marker(), 0)
    if reader.at != len(data):
        raise InvalidArtifact(f"UBJSON: {len(data) - reader.at} bytes after the model's object")
    return value


def _truncated(at: int) -> InvalidArtifact:
    return InvalidArtifact(f"UBJSON: the file ends inside a value at byte {at} (truncated?)")


def _too_many() -> InvalidArtifact:
    return InvalidArtifact("UBJSON: the file holds far more values than any XGBoost model")


class _Reader:
    def __init__(self, data: bytes, object_hook: Callable[[dict], object], max_features: int | None):
        self.data, self.at, self.object_hook = data, 0, object_hook
        self.max_features = max_features
        self.strings_left = len(data) if max_features is None else 2 * max_features  # held in arrays
        self.values_left = MAX_VALUES + len(data) // 8
        self.keys: dict[bytes, str] = {}
        self.heads: list[tuple | None] = [None] * (MAX_DEPTH + 1) * _PLACES  # what ``fields`` read last at each place

    def take(self, size: int) -> bytes:
        if size < 0 or size > len(self.data) - self.at:
            raise _truncated(self.at)
        start = self.at
        self.at = start + size
        return self.data[start:start + size]

    def marker(self) -> int:
        at = self.at
        if at >= len(self.data):
            raise _truncated(at)
        self.at = at + 1
        return self.data[at]

    def integer(self, marker: int) -> int:
        """A length or a count, after its ``marker``."""
        if marker not in _INTEGERS:
            raise InvalidArtifact(f"UBJSON: a length or count has the marker {bytes([marker])!r}, not an integer's")
        read, size = _INTEGERS[marker]
        at = self.at
        if at + size > len(self.data):
            raise _truncated(at)
        self.at = at + size
        return read(self.data, at)[0]

    def string(self) -> str:
        raw = self.take(self.integer(self.marker()))
        try:
            return str(raw, "utf-8")
        except UnicodeDecodeError:
            raise InvalidArtifact(f"UBJSON: a string at byte {self.at - len(raw)} is not UTF-8") from None

    def key(self, marker: int) -> str:
        """An object's key after its length's ``marker``, kept once however many objects name it."""
        raw = self.take(self.integer(marker))
        key = self.keys.get(raw)
        if key is None:
            self.count_values(_NEW_KEY)
            try:
                key = self.keys[raw] = str(raw, "utf-8")
            except UnicodeDecodeError:
                raise InvalidArtifact(f"UBJSON: a key at byte {self.at - len(raw)} is not UTF-8") from None
        return key

    def value(self, marker: int, depth: int) -> object:
        self.values_left -= 1
        if self.values_left < 0:
            raise _too_many()
        if marker == _OPEN_ARRAY or marker == _OPEN_OBJECT:  # first: most of a model's values are arrays
            if depth >= MAX_DEPTH:
                raise InvalidArtifact(f"UBJSON: containers nested more than {MAX_DEPTH} deep")
            typed = _TYPED_NUMBERS.get(self.data[self.at - 1:self.at + 4]) if marker == _OPEN_ARRAY else None
            if typed is not None:
                self.at += 4
                return self.numbers(*typed)
            return self.container(marker == _OPEN_OBJECT, depth + 1)
        if marker in _CONSTANTS:
            return _CONSTANTS[marker]
        if marker in _SCALARS:
            read, size = _SCALARS[marker]
            at = self.at
            if at + size > len(self.data):
                raise _truncated(at)
            self.at = at + size
            return read(self.data, at)[0]
        if marker == _S:
            return self.string()
        if marker == _C:
            return str(self.take(1), "latin-1")
        raise InvalidArtifact(f"UBJSON: an unknown marker {bytes([marker])!r} at byte {self.at - 1}")

    def container(self, is_object: bool, depth: int) -> object:
        kind, count = None, None
        marker = self.marker()
        if marker == _TYPED:
            kind = self.marker()
            marker = self.marker()
            if marker != _COUNTED:
                raise InvalidArtifact("UBJSON: a typed container without its count")
        if marker == _COUNTED:
            count = self.integer(self.marker())
            if count < 0 or count > len(self.data) - self.at:
                raise InvalidArtifact(f"UBJSON: a container announces {count} values, more than the file holds")
            if not is_object and kind in _CONSTANTS:
                self.count_values(count)
                return [_CONSTANTS[kind]] * count
            return self._counted(is_object, kind, count, depth)
        if is_object:
            return self.object_hook(self.fields(marker, depth))
        items = []
        while marker != _CLOSE_ARRAY:
            if self.starts_run(marker):
                items.extend(self.run(marker, len(self.data)))
            else:
                items.append(self.held(marker, depth))
            marker = self.marker()
        return items

    def fields(self, marker: int, depth: int) -> dict:
        """An object's keys and values up to its ``}`` (``marker``, the first key's length marker, read). Where an
        object before read a key and the head of a typed array of numbers at the same place, and the same bytes
        follow here (every tree XGBoost writes has the same fields in the same order), they are read as they were,
        and the array at once: one step of Python a field."""
        data, items, heads = self.data, {}, self.heads
        place = depth * _PLACES  # each depth's places its own: a tree's object holds another at the next depth
        last = place + _PLACES
        while marker != _CLOSE_OBJECT:
            start = self.at - 1
            head = heads[place] if place < last else None
            if head is not None and data.startswith(head[0], start):
                _, key, typed = head
                self.at = start + len(head[0])
            else:
                key = self.key(marker)  # before its value: an assignment reads its value first
                typed = _TYPED_NUMBERS.get(data[self.at:self.at + 5])
                if typed is not None:
                    self.at += 5
                if place < last and self.at - start <= _HEAD_BYTES:
                    heads[place] = (data[start:self.at], key, typed)
            if typed is None:
                items[key] = self.value(self.marker(), depth)
            else:  # as ``value`` reads it
                self.values_left -= 1
                if self.values_left < 0:
                    raise _too_many()
                if depth >= MAX_DEPTH:
                    raise InvalidArtifact(f"UBJSON: containers nested more than {MAX_DEPTH} deep")
                items[key] = self.numbers(*typed)
            place += 1
            marker = self.marker()
        return items

    def numbers(self, dtype: np.dtype, read: Callable, size: int) -> np.ndarray:
        """A typed array of numbers (its head read, its count's bytes next), read straight from the bytes in their
        byte order (big-endian), after its count is checked against the bytes left."""
        data, at = self.data, self.at
        if at + size > len(data):
            raise _truncated(at)
        count, start = read(data, at)[0], at + size
        if count < 0 or count > len(data) - start:
            raise InvalidArtifact(f"UBJSON: a container announces {count} values, more than the file holds")
        if count * dtype.itemsize > len(data) - start:
            raise _truncated(start)
        self.at = start + count * dtype.itemsize
        return np.frombuffer(data, dtype, count, start)

    def _counted(self, is_object: bool, kind: int | None, count: int, depth: int) -> object:
        """A container of ``count`` values, each of type ``kind`` (each with its own marker when None)."""
        if is_object:
            items = {}
            for _ in range(count):
                key = self.key(self.marker())
                items[key] = self.value(kind or self.marker(), depth)
            return self.object_hook(items)
        if kind is not None:
            return [self.held(kind, depth) for _ in range(count)]
        items = []
        while len(items) < count:
            marker = self.marker()
            if self.starts_run(marker):
                items.extend(self.run(marker, count - len(items)))
            else:
                items.append(self.held(marker, depth))
        return items

    def held(self, marker: int, depth: int) -> object:
        """A value of an array (its ``marker`` read), counted for what the list holds: a number as several values,
        a container as more."""
        value = self.value(marker, depth)
        self.count_values(_HELD.get(marker, 0))
        if marker == _S:
            self.strings_left -= 1
            if self.strings_left < 0:
                raise ArtifactTooLarge(f"the file's arrays hold more strings than the names and types of "
                                       f"{self.max_features:,} features: at most {self.max_features:,} features are "
                                       "accepted (MAX_FEATURES, see docs/artifacts.md)")
        return value

    def count_values(self, n: int) -> None:
        """Counts ``n`` more values against the bound, refusing the file past it."""
        self.values_left -= n
        if self.values_left < 0:
            raise _too_many()

    def starts_run(self, marker: int) -> bool:
        """Whether the value of ``marker`` (read) is a constant followed by another, or a number followed by another
        of its marker."""
        size = _SIZES.get(marker)
        if size is None or self.at + size >= len(self.data):
            return False
        after = self.data[self.at + size]
        return after in _CONSTANTS if marker in _CONSTANTS else after == marker

    def run(self, marker: int, limit: int) -> list:
        """The values of a run of ``marker`` (its first marker read), at most ``limit`` of them, found at once by
        NumPy, which compares every ``size + 1``-th byte (never past the values the bound has left, and one)."""
        size, start = _SIZES[marker], self.at - 1
        most = min(limit, self.values_left + 1, (len(self.data) - start) // (size + 1))
        markers = np.frombuffer(self.data, np.uint8, most * (size + 1), start)[::size + 1]
        same = _IS_CONSTANT[markers] if marker in _CONSTANTS else markers == marker
        n = most if same.all() else int(same.argmin())
        del markers, same
        self.count_values(n + n * _HELD.get(marker, 0))
        self.at = start + n * (size + 1)
        if marker in _CONSTANTS:
            return list(map(_CONSTANTS.__getitem__, self.data[start:self.at]))
        return np.frombuffer(self.data, _RECORDS[marker], n, start)["value"].tolist()
