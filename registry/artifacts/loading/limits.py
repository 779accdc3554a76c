"""How much reading one artifact may build: bytes (``MAX_MODEL_MB``) and objects.

Every byte a decompressor hands over is charged as it is read (an uncompressed upload is already in
memory, and never larger than the limit), and every size a file announces (an array's shape, a
bytearray's length, a zip entry's size) is checked before anything is allocated, so a refused
upload costs at most the limit, never what the file claims.
"""
from __future__ import annotations

import math
import operator

from registry.errors import ArtifactTooLarge

MIB = 1024 * 1024
DEFAULT_MAX_MODEL_BYTES = 2048 * MIB

# Each pickle step (a value, a container, a memo entry) or skops JSON value counts as one object.
# A 500-tree forest behind a ColumnTransformer with a 2,000-category OneHotEncoder builds about
# 90,000 (185,000 as skops); 30 million empty lists cost 2 GB and 35 s. One million is ten times
# the first and refused in one to two seconds.
MAX_OBJECTS = 1_000_000

DOCS = "docs/artifacts.md"


class Budget:
    """What reading one artifact may still build; raises ArtifactTooLarge past either limit."""

    def __init__(self, max_bytes: int, max_objects: int = MAX_OBJECTS):
        self.max_bytes = max_bytes
        self.max_objects = max_objects
        self.bytes = 0
        self.objects = 0

    @property
    def bytes_left(self) -> int:
        """Bytes that may still be built."""
        return self.max_bytes - self.bytes

    def charge(self, size: int) -> None:
        """Count ``size`` bytes as built."""
        self.check(size)
        self.bytes += size

    def check(self, size: int) -> None:
        """Refuse an announced ``size`` that would not fit, before anything is allocated for it."""
        if size > self.bytes_left:
            raise ArtifactTooLarge(
                f"artifact unpacks to more than MAX_MODEL_MB ({self.max_bytes // MIB} MB): "
                f"upload a smaller model, or ask the operator to raise MAX_MODEL_MB (see {DOCS})"
            )

    def count_objects(self, count: int = 1) -> None:
        """Count ``count`` more objects built."""
        self.objects += count
        if self.objects > self.max_objects:
            raise too_many_objects(self.max_objects)


def too_many_objects(limit: int) -> ArtifactTooLarge:
    """The refusal of a file that builds more than ``limit`` objects."""
    return ArtifactTooLarge(
        f"artifact builds more than {limit:,} objects, far more than any supported model: "
        f"upload the fitted model itself, written by joblib.dump (see {DOCS})"
    )


def array_bytes(shape, itemsize: int) -> int:
    """Bytes of an array of ``shape`` (an int or a tuple of ints); ValueError when impossible."""
    dims = (shape,) if not isinstance(shape, tuple) else shape
    sizes = [operator.index(dim) for dim in dims]
    if any(size < 0 for size in sizes):
        raise ValueError(f"negative dimension in array shape {shape!r}")
    return math.prod(sizes) * itemsize


class BoundedStream:
    """A readable file that charges every byte it hands over to a Budget.

    A read that asks for more than the budget has left is refused before it is made, so neither a
    decompressor nor a length announced in the stream can make the reader allocate past the limit.
    """

    def __init__(self, raw, budget: Budget):
        self.raw = raw
        self.budget = budget

    def read(self, size: int | None = -1) -> bytes:
        """Up to ``size`` bytes (all that is left when negative), charged to the budget."""
        budget = self.budget
        left = budget.max_bytes - budget.bytes
        if size is None or size < 0:
            size = left + 1
        elif size > left:
            budget.check(size)
        data = self.raw.read(size)
        budget.charge(len(data))
        return data

    def readline(self, size: int | None = -1) -> bytes:
        """One line, never longer than the budget allows."""
        limit = self.budget.bytes_left + 1
        return self._charged(self.raw.readline(limit if size is None or size < 0 else min(size, limit)))

    def _charged(self, data: bytes) -> bytes:
        self.budget.charge(len(data))
        return data
