"""Hostile artifacts, small on disk and huge once unpacked, made without ever holding the big side.

Compressed bombs repeat one compressed block of zeros: zlib and gzip blocks are independent after a
full flush, and bz2 and xz read concatenated streams, so a 2.5 GB bomb takes milliseconds to make.
The zlib and gzip trailers' checksums are right only with ``checksummed=True`` (seconds more): a
bounded reader refuses long before the trailer, an unbounded one would accept the file.
"""
from __future__ import annotations

import bz2
import io
import lzma
import pickle
import struct
import zipfile
import zlib

import numpy as np
from joblib.numpy_pickle import NumpyArrayWrapper

MIB = 1024 * 1024
BLOCK_BYTES = 16 * MIB
COMPRESSORS = ("zlib", "gzip", "bz2", "xz", "lzma")


def _wrapper_body(n_bytes: int) -> bytes:
    """The pickle opcodes of a joblib array wrapper announcing ``n_bytes`` of uint8 (no PROTO, no STOP)."""
    wrapper = NumpyArrayWrapper(np.ndarray, (n_bytes,), "C", np.dtype("uint8"), allow_mmap=False)
    wrapper.numpy_array_alignment_bytes = None  # no padding byte before the data
    return pickle.dumps(wrapper, protocol=3)[2:-1]


def _compressed(prefix: bytes, block: bytes, repeats: int, tail: bytes, compressor: str,
                checksummed: bool = False) -> bytes:
    """prefix + block * repeats + tail, compressed as joblib's ``compressor`` writes it."""
    if compressor in ("zlib", "gzip"):
        packer = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS + (16 if compressor == "gzip" else 0))
        head = packer.compress(prefix) + packer.flush(zlib.Z_FULL_FLUSH)
        middle = packer.compress(block) + packer.flush(zlib.Z_FULL_FLUSH)
        data = head + middle * repeats + packer.compress(tail) + packer.flush()
        if not checksummed:
            return data
        parts = (prefix, *[block] * repeats, tail)
        if compressor == "zlib":
            adler = 1
            for part in parts:
                adler = zlib.adler32(part, adler)
            return data[:-4] + struct.pack(">I", adler)
        crc = 0
        for part in parts:
            crc = zlib.crc32(part, crc)
        size = len(prefix) + len(block) * repeats + len(tail)
        return data[:-8] + struct.pack("<II", crc, size & 0xFFFFFFFF)
    if compressor in ("bz2", "xz"):
        pack = bz2.compress if compressor == "bz2" else (lambda data: lzma.compress(data, lzma.FORMAT_XZ))
        return pack(prefix) + pack(block) * repeats + pack(tail)
    if compressor == "lzma":  # one stream only: the whole thing is compressed, so keep it small
        return lzma.compress(prefix + block * repeats + tail, lzma.FORMAT_ALONE)
    raise ValueError(f"unknown compressor {compressor}")


def one_array_bomb(n_bytes: int, compressor: str = "zlib", checksummed: bool = False) -> bytes:
    """A joblib file of one array of ``n_bytes`` zeros (it announces its size up front)."""
    repeats, rest = divmod(n_bytes, BLOCK_BYTES)
    prefix = b"\x80\x03" + _wrapper_body(n_bytes) + bytes(rest)
    return _compressed(prefix, bytes(BLOCK_BYTES), repeats, b".", compressor, checksummed)


def many_arrays_bomb(n_bytes: int, compressor: str = "zlib", array_bytes: int = BLOCK_BYTES,
                     checksummed: bool = False) -> bytes:
    """A joblib file of a list of arrays of ``array_bytes`` zeros each, ``n_bytes`` in all.

    No single size it announces is large: only a running count of what is read can stop it.
    """
    block = _wrapper_body(array_bytes) + bytes(array_bytes)
    repeats = max(1, n_bytes // array_bytes)
    return _compressed(b"\x80\x03](", block, repeats, b"e.", compressor, checksummed)


def empty_lists_pickle(count: int) -> bytes:
    """A plain pickle of a list of ``count`` empty lists: one byte each."""
    return b"\x80\x04(" + b"]" * count + b"l."


def skops_zip_bomb(model_file: bytes, n_bytes: int) -> bytes:
    """A real skops file with one more entry: ``n_bytes`` of zeros deflated, sizes told honestly."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(model_file)) as source, zipfile.ZipFile(out, "w") as target:
        for entry in source.infolist():
            target.writestr(entry, source.read(entry))
    packer = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    repeats, rest = divmod(n_bytes, BLOCK_BYTES)
    middle = packer.compress(bytes(BLOCK_BYTES)) + packer.flush(zlib.Z_FULL_FLUSH)
    deflated = middle * repeats + packer.compress(bytes(rest)) + packer.flush()
    return _append_zip_entry(out.getvalue(), "bomb.npy", deflated, n_bytes)


def _append_zip_entry(archive: bytes, name: str, deflated: bytes, size: int) -> bytes:
    """``archive`` with one more deflated entry written by hand (zipfile would inflate it to check)."""
    end = archive.rindex(b"PK\x05\x06")
    entries, cd_size, cd_offset = struct.unpack("<HII", archive[end + 10 : end + 20])
    encoded = name.encode()
    offset = cd_offset
    local = struct.pack("<4s5H3I2H", b"PK\x03\x04", 20, 0, 8, 0, 0, 0, len(deflated), size, len(encoded), 0)
    central = struct.pack(
        "<4s6H3I5H2I", b"PK\x01\x02", 20, 20, 0, 8, 0, 0, 0, len(deflated), size, len(encoded), 0, 0, 0, 0, 0, offset
    )
    body = archive[:cd_offset] + local + encoded + deflated
    directory = archive[cd_offset:end] + central + encoded
    record = struct.pack("<4s4H2IH", b"PK\x05\x06", 0, 0, entries + 1, entries + 1, len(directory), len(body), 0)
    return body + directory + record


def wide_claim_linear(n_features: int) -> bytes:
    """A pickle of a LinearRegression fitted on 3 features that says it takes ``n_features``: a few
    hundred bytes whose signature, believed, is ``n_features`` columns."""
    from sklearn.linear_model import LinearRegression

    X = np.random.default_rng(0).normal(size=(20, 3))
    model = LinearRegression().fit(X, X.sum(axis=1))
    model.n_features_in_ = n_features
    return pickle.dumps(model, protocol=5)
