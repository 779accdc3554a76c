"""A bounded reader of UBJSON (the binary JSON XGBoost's ``save_model`` writes to ``.ubj``).

It reads the draft-12 markers XGBoost writes (objects, arrays, strongly typed arrays with ``$`` and
``#``, integers, float32/float64, strings, ``T``/``F``/``Z``) and nothing else. Every length
and count is checked against the bytes left before anything is built, nesting is bounded, and a
typed numeric array becomes one NumPy array read straight from the bytes. Every other value is a Python
object, so their number is bounded too (``MAX_VALUES`` and one for every 8 bytes of the file, several
times what XGBoost writes): a file of a million nulls is refused after as many steps as a model's worth,
never after one step a byte. Keys are kept once each, as the json module keeps them.
"""
from __future__ import annotations

import numpy as np

from registry.errors import InvalidArtifact

MAX_DEPTH = 32
MAX_VALUES = 100_000  # and one more for every 8 bytes of the file
_NUMBERS = {ord(m): np.dtype(t) for m, t in
            {"i": ">i1", "U": ">u1", "I": ">i2", "l": ">i4", "L": ">i8", "d": ">f4", "D": ">f8"}.items()}
_INTEGERS = {ord(m): (size, signed) for m, size, signed in
             (("i", 1, True), ("U", 1, False), ("I", 2, True), ("l", 4, True), ("L", 8, True))}
_CONSTANTS = {ord("T"): True, ord("F"): False, ord("Z"): None}
_S, _C, _OPEN_ARRAY, _OPEN_OBJECT = ord("S"), ord("C"), ord("["), ord("{")
_TYPED, _COUNTED = ord("$"), ord("#")


def loads(data: bytes) -> object:
    """The value ``data`` holds (dicts, lists, str, int, float, bool, None and NumPy arrays for typed
    numeric arrays); raises ``InvalidArtifact`` naming what is wrong for anything else."""
    reader = _Reader(bytes(data))
    value = reader.value(reader.marker(), 0)
    if reader.at != len(data):
        raise InvalidArtifact(f"UBJSON: {len(data) - reader.at} bytes after the model's object")
    return value


class _Reader:
    def __init__(self, data: bytes):
        self.data, self.at = data, 0
        self.values_left = MAX_VALUES + len(data) // 8
        self.keys: dict[str, str] = {}

    def take(self, size: int) -> bytes:
        if size < 0 or size > len(self.data) - self.at:
            raise InvalidArtifact(f"UBJSON: the file ends inside a value at byte {self.at} (truncated?)")
        start = self.at
        self.at = start + size
        return self.data[start:start + size]

    def marker(self) -> int:
        at = self.at
        if at >= len(self.data):
            raise InvalidArtifact(f"UBJSON: the file ends inside a value at byte {at} (truncated?)")
        self.at = at + 1
        return self.data[at]

    def integer(self, marker: int) -> int:
        if marker not in _INTEGERS:
            raise InvalidArtifact(f"UBJSON: a length or count has the marker {bytes([marker])!r}, not an integer's")
        size, signed = _INTEGERS[marker]
        return int.from_bytes(self.take(size), "big", signed=signed)

    def string(self) -> str:
        size = self.integer(self.marker())
        try:
            return str(self.take(size), "utf-8")
        except UnicodeDecodeError:
            raise InvalidArtifact(f"UBJSON: a string at byte {self.at - size} is not UTF-8") from None

    def value(self, marker: int, depth: int) -> object:
        self.values_left -= 1
        if self.values_left < 0:
            raise InvalidArtifact("UBJSON: the file holds far more values than any XGBoost model")
        if marker in _CONSTANTS:
            return _CONSTANTS[marker]
        if marker in _INTEGERS:
            return self.integer(marker)
        if marker in _NUMBERS:
            kind = _NUMBERS[marker]
            return float(np.frombuffer(self.take(kind.itemsize), dtype=kind)[0])
        if marker == _S:
            return self.string()
        if marker == _C:
            return str(self.take(1), "latin-1")
        if marker == _OPEN_ARRAY or marker == _OPEN_OBJECT:
            if depth >= MAX_DEPTH:
                raise InvalidArtifact(f"UBJSON: containers nested more than {MAX_DEPTH} deep")
            return self.container(marker == _OPEN_OBJECT, depth + 1)
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
            if not is_object and kind in _NUMBERS:
                dtype = _NUMBERS[kind]
                return np.frombuffer(self.take(count * dtype.itemsize), dtype=dtype).astype(dtype.newbyteorder("="))
            return self._counted(is_object, kind, count, depth)
        end = ord("}") if is_object else ord("]")
        items = {} if is_object else []
        while marker != end:
            if is_object:
                self.at -= 1  # the marker read was the key's length marker
                key = self.string()
                items[self.keys.setdefault(key, key)] = self.value(self.marker(), depth)
            else:
                items.append(self.value(marker, depth))
            marker = self.marker()
        return items

    def _counted(self, is_object: bool, kind: int | None, count: int, depth: int) -> object:
        """A container of ``count`` values, each of type ``kind`` (each with its own marker when None)."""
        if is_object:
            items = {}
            for _ in range(count):
                key = self.string()
                items[self.keys.setdefault(key, key)] = self.value(kind or self.marker(), depth)
            return items
        return [self.value(kind or self.marker(), depth) for _ in range(count)]
