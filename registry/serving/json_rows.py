"""A large JSON predict body's rows of plain numbers, read by compiled code that lets go of the GIL.

A worker's threads share one GIL. orjson parses a body holding it, and the lists it makes were then checked
and copied into an array holding it too: 2,000 rows of 8 numbers held a worker's GIL for about 6 ms, while
its other requests (another model's one-row answer, a refusal, a probe) waited. Here a body of
:data:`FROM_BYTES` or more whose ``instances`` is an array of rows of JSON numbers is read into a float64
matrix by ``native/json_rows.c``, through ``ctypes.CDLL``, which lets go of the GIL for the call; orjson
parses only the rest of the body (``"instances"`` replaced by ``null``). Anything else, and any body the C
reader does not take whole, is parsed as before (:func:`split` answers None), which also words every refusal.
The numbers are those orjson and NumPy make of the same text (tests/unit/test_json_rows.py compares them).
"""
from __future__ import annotations

import ctypes
from dataclasses import dataclass

import numpy as np
import orjson

from registry.inference.tree_walk import LIBRARY

FROM_BYTES = 8192  # smaller bodies hold the GIL for tens of microseconds; orjson parses them
_NULL = b"null"

_LIBRARY = ctypes.CDLL(str(LIBRARY))  # lets go of the GIL for each call
_span = _LIBRARY.json_rows_span
_span.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_size_t)]
_span.restype = ctypes.c_int64
_read = _LIBRARY.json_rows_read
_read.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_size_t, ctypes.c_size_t, ctypes.c_void_p,
                  ctypes.POINTER(ctypes.c_size_t)]
_read.restype = ctypes.c_int64


@dataclass(frozen=True, eq=False)
class NumberRows:
    """A body's ``instances`` read as a matrix (rows × the first row's length), and its JSON text, which
    :meth:`lists` parses as any body's for a signature the matrix does not fit."""

    matrix: np.ndarray
    text: bytes

    def lists(self) -> list:
        """The rows as orjson gives them (lists of ints and floats)."""
        return orjson.loads(self.text)


def split(data: bytes, max_rows: int) -> tuple[bytes, NumberRows] | None:
    """``data`` with its top-level ``instances`` replaced by ``null``, and those rows read; None unless ``data``
    is an object with one member ``instances`` (and no member whose name holds an escape), an array of 1 to
    ``max_rows`` rows, each as long as the first, of JSON numbers within a double's normal range."""
    address = ctypes.cast(ctypes.c_char_p(data), ctypes.c_void_p).value
    span = (ctypes.c_size_t * 2)()
    if not _span(address, len(data), span):
        return None
    start, end = span
    cells = np.empty((end - start) // 2 + 1, dtype=np.float64)  # a number and its comma take 2 bytes at least
    width = ctypes.c_size_t()
    rows = _read(address + start, end - start, max_rows, cells.size, cells.ctypes.data, ctypes.byref(width))
    if rows < 0:
        return None
    cells.resize(rows * width.value, refcheck=False)  # gives back what the rows did not take, in place
    return data[:start] + _NULL + data[end:], NumberRows(cells.reshape(rows, width.value), data[start:end])
