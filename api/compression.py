"""Compressed request bodies (``Content-Encoding: gzip`` or ``deflate``, as tritonclient can send them)."""
import zlib

from api.errors import ProblemError

# zlib's window bits: gzip's header and trailer, and the zlib format that HTTP calls "deflate".
_WINDOW_BITS = {"gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


def decoded_body(data: bytes, encoding: str | None, limit: int) -> bytes:
    """``data`` decompressed as ``encoding`` says, never past ``limit`` bytes (413 beyond it)."""
    encoding = (encoding or "identity").strip().lower()
    if encoding == "identity":
        return data
    if encoding not in _WINDOW_BITS:
        raise ProblemError(415, f"Content-Encoding {encoding!r} is not supported; send gzip, deflate or no encoding")
    inflater = zlib.decompressobj(_WINDOW_BITS[encoding])
    try:
        body = inflater.decompress(data, limit + 1)
    except zlib.error as exc:
        raise ProblemError(400, f"the body is not valid {encoding} data: {exc}") from None
    if len(body) > limit:
        raise ProblemError(413, f"the decompressed body is over the limit of {limit // (1024 * 1024)} MB (MAX_PREDICT_MB); send fewer rows per request")
    return body
