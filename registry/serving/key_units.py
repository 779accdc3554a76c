"""Sticky keys as the units of a rollout's experiment, counted in bounded memory.

With a sticky header the key, not the request, is what was assigned to an arm: a thousand requests
of one key are one observation. Each process therefore keeps, per rollout arm and per split (the
rollout's ``epoch``, which changes whenever its shares or its plan's step do), 16 KB whatever the
number of keys:

- how many requests each key has sent, in a count-min sketch (``CM_ROWS`` x ``CM_WIDTH`` one-byte
  cells, conservative update), so that only a key's first ``KEY_WEIGHT`` requests weigh in the gates.
  A sketch may over-count a key, never under-count it: under a flood of heavy keys an honest key
  may be weighed less, never more;
- which keys it saw, in a HyperLogLog sketch (``HLL_REGISTERS`` one-byte registers, a 64-bit BLAKE2b
  hash of each key; Flajolet et al. 2007, with linear counting while few registers are set), written
  with the figures and merged over every process (register by register, the larger), so the fleet's
  count of distinct keys is not inflated by a key that reached several workers. Its standard
  error is about 1.6 %, and much less while few keys were seen.

A key reaching several processes weighs up to ``KEY_WEIGHT`` in each: at most ``KEY_WEIGHT`` times
the number of processes in all. The sketches hold hashes, never a key.
"""
from __future__ import annotations

import base64
import hashlib
import math
import zlib

import numpy as np

KEY_WEIGHT = 10  # requests of one key per split and process that the gates weigh
CM_ROWS, CM_WIDTH = 3, 4096
HLL_BITS = 12
HLL_REGISTERS = 1 << HLL_BITS
NO_KEY = ""  # the unit of requests that come without the sticky header: together they weigh as one key
_RANK_BITS = 64 - HLL_BITS


class KeyUnits:
    """One arm's keys in this process since its split began: requests per key (bounded) and the keys seen."""

    def __init__(self, epoch: float | None):
        self.epoch = epoch
        self._counts = np.zeros((CM_ROWS, CM_WIDTH), dtype=np.uint8)
        self._registers = np.zeros(HLL_REGISTERS, dtype=np.uint8)

    def weigh(self, key: str) -> bool:
        """Count one request of ``key``; True while the key has sent at most ``KEY_WEIGHT`` of them."""
        digest = hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=16).digest()
        first, second = int.from_bytes(digest[:8], "big"), int.from_bytes(digest[8:], "big")
        register, rest = first >> _RANK_BITS, first & ((1 << _RANK_BITS) - 1)
        self._registers[register] = max(self._registers[register], _RANK_BITS - rest.bit_length() + 1)
        cells = (np.arange(CM_ROWS), [(second >> (16 * row)) % CM_WIDTH for row in range(CM_ROWS)])
        seen = int(self._counts[cells].min())
        if seen >= KEY_WEIGHT:
            return False
        self._counts[cells] = np.maximum(self._counts[cells], seen + 1)  # conservative update
        return True

    def sketch(self) -> str:
        """The keys seen, serialized for the figures' row (merged over processes by :func:`merged`)."""
        return _dumped(self._registers)


def merged(first: str | None, second: str | None) -> str | None:
    """The union of two serialized key sketches of the same split."""
    if not first or not second:
        return first or second
    return _dumped(np.maximum(_loaded(first), _loaded(second)))


def counted(sketch: str | None) -> tuple[int, float]:
    """How many distinct keys a sketch saw (rounded) and the standard deviation of that estimate."""
    if not sketch:
        return 0, 0.0
    registers = _loaded(sketch)
    m = float(HLL_REGISTERS)
    empty = int((registers == 0).sum())
    raw = 0.7213 / (1 + 1.079 / m) * m * m / float(np.sum(np.exp2(-registers.astype(float))))
    if raw <= 2.5 * m and empty:
        estimate = m * math.log(m / empty)  # linear counting: exact-ish while most registers are empty
        load = estimate / m
        spread = math.sqrt(m * max(math.exp(load) - load - 1, 0.0))
    else:
        estimate, spread = raw, 1.04 / math.sqrt(m) * raw
    return int(round(estimate)), spread


def is_epoch(first: float | None, second: float | None) -> bool:
    """Whether two epochs name the same split (they travel through the database as doubles)."""
    return first is not None and second is not None and math.isclose(first, second, rel_tol=0, abs_tol=1e-6)


def _dumped(registers: np.ndarray) -> str:
    return base64.b64encode(zlib.compress(registers.tobytes(), 6)).decode("ascii")


def _loaded(sketch: str) -> np.ndarray:
    return np.frombuffer(zlib.decompress(base64.b64decode(sketch)), dtype=np.uint8)
