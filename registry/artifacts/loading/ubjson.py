"""A bounded reader of UBJSON (the binary JSON XGBoost's ``save_model`` writes to ``.ubj``).

It reads the draft-12 markers XGBoost writes (objects, arrays, strongly typed arrays with ``$`` and
``#``, integers, float32/float64, strings, ``T``/``F``/``Z``/``N``) and nothing else. Every length
and count is checked against the bytes left before anything is built, nesting is bounded, and a
typed numeric array becomes one NumPy array read straight from the bytes, so a file never builds
more than a small multiple of its own size.
"""
from __future__ import annotations

import numpy as np

from registry.errors import InvalidArtifact

MAX_DEPTH = 32
_NUMBERS = {b"i": ">i1", b"U": ">u1", b"I": ">i2", b"l": ">i4", b"L": ">i8", b"d": ">f4", b"D": ">f8"}


def loads(data: bytes) -> object:
    """The value ``data`` holds (dicts, lists, str, int, float, bool, None and NumPy arrays for typed
    numeric arrays); raises ``InvalidArtifact`` naming what is wrong for anything else."""
    reader = _Reader(memoryview(data))
    value = reader.value(reader.marker(), 0)
    if reader.at != len(data):
        raise InvalidArtifact(f"UBJSON: {len(data) - reader.at} bytes after the model's object")
    return value


class _Reader:
    def __init__(self, data: memoryview):
        self.data, self.at = data, 0

    def take(self, size: int) -> memoryview:
        if size < 0 or size > len(self.data) - self.at:
            raise InvalidArtifact(f"UBJSON: the file ends inside a value at byte {self.at} (truncated?)")
        part = self.data[self.at:self.at + size]
        self.at += size
        return part

    def marker(self) -> bytes:
        return bytes(self.take(1))

    def integer(self, marker: bytes) -> int:
        if marker not in _NUMBERS or marker in (b"d", b"D"):
            raise InvalidArtifact(f"UBJSON: a length or count has the marker {marker!r}, not an integer's")
        kind = np.dtype(_NUMBERS[marker])
        return int(np.frombuffer(self.take(kind.itemsize), dtype=kind)[0])

    def string(self) -> str:
        size = self.integer(self.marker())
        try:
            return str(self.take(size), "utf-8")
        except UnicodeDecodeError:
            raise InvalidArtifact(f"UBJSON: a string at byte {self.at - size} is not UTF-8") from None

    def value(self, marker: bytes, depth: int) -> object:
        if marker in _NUMBERS:
            kind = np.dtype(_NUMBERS[marker])
            number = np.frombuffer(self.take(kind.itemsize), dtype=kind)[0]
            return float(number) if kind.kind == "f" else int(number)
        if marker == b"S":
            return self.string()
        if marker == b"C":
            return str(self.take(1), "latin-1")
        if marker in (b"T", b"F", b"Z"):
            return {b"T": True, b"F": False, b"Z": None}[marker]
        if marker in (b"[", b"{"):
            if depth >= MAX_DEPTH:
                raise InvalidArtifact(f"UBJSON: containers nested more than {MAX_DEPTH} deep")
            return self.container(marker == b"{", depth + 1)
        raise InvalidArtifact(f"UBJSON: an unknown marker {marker!r} at byte {self.at - 1}")

    def container(self, is_object: bool, depth: int) -> object:
        kind, count = None, None
        marker = self.marker()
        if marker == b"$":
            kind = self.marker()
            marker = self.marker()
            if marker != b"#":
                raise InvalidArtifact("UBJSON: a typed container without its count")
        if marker == b"#":
            count = self.integer(self.marker())
            if count < 0 or count > len(self.data) - self.at:
                raise InvalidArtifact(f"UBJSON: a container announces {count} values, more than the file holds")
        if not is_object and kind in _NUMBERS:
            dtype = np.dtype(_NUMBERS[kind])
            return np.frombuffer(self.take(count * dtype.itemsize), dtype=dtype).astype(dtype.newbyteorder("="))
        items = {} if is_object else []
        read = 0
        while True:
            if count is None:
                marker = self.marker() if read or marker in (b"#", b"$") else marker
                if marker == (b"}" if is_object else b"]"):
                    return items
            elif read == count:
                return items
            if is_object:
                if count is None:
                    self.at -= 1  # the marker read was the key's length marker
                key = self.string()
                items[key] = self.value(kind or self.marker(), depth)
            else:
                items.append(self.value(kind or (self.marker() if count is not None else marker), depth))
            read += 1

