"""Request-body helpers shared by views: content types, JSON decoding, size limits.

Every JSON body is decoded here, once, before any view or schema sees it: a body that is not
JSON, or that nests deeper than ``MAX_JSON_DEPTH``, is a 400 whatever the route.
"""
import json
import re
from collections.abc import Callable, Iterator
from functools import wraps
from itertools import chain

import numpy as np
import orjson
from flask import request

from api.compression import decoded_body
from api.errors import ProblemError
from api.settings import settings_of
from registry.serving import json_rows

# Far beyond any real body (a predict body is 3 levels deep, metadata a handful), and far below
# what the parsers, the JSON columns and the response encoders can recurse through.
MAX_JSON_DEPTH = 64
# Arrays and objects a body may hold for each row of the largest batch (a record; a feedback item and
# its list of labels; a row of each of a V2 request's nested tensors), and beyond them (the body itself,
# a dataframe_split, its columns, a V2 request's tensors): counted before anything is parsed, since
# millions of tiny rows cost a worker 30 times their bytes once parsed.
CONTAINERS_PER_ROW = 4
CONTAINER_SLACK = 64
_STRINGS = re.compile(rb'"(?:[^"\\]|\\.)*"')
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_CHUNK = 1 << 20
# Above this many brackets a parsed body's depth is read from its bytes rather than from its values.
_WALK_UP_TO_BRACKETS = 512


def accepts(*mimetypes: str, body_optional: bool = False) -> Callable:
    """Refuse (415) a request whose body is not one of ``mimetypes``.

    With ``body_optional`` an empty body passes whatever its type (every field has a default).
    """

    def decorator(view):
        @wraps(view)
        def wrapped(*args, **kwargs):
            if body_optional and not request.get_data(cache=True):
                return view(*args, **kwargs)
            check_type(request.mimetype, mimetypes)
            return view(*args, **kwargs)

        return wrapped

    return decorator


def check_type(mimetype: str, mimetypes: tuple[str, ...]) -> None:
    """Refuse (415) a body of ``mimetype`` (lower case, no parameters) unless it is one of ``mimetypes``."""
    if mimetype not in mimetypes:
        raise ProblemError(415, f"send the body as {' or '.join(mimetypes)}, not {mimetype or 'no Content-Type'}")


def check_json_body() -> None:
    """Decode a JSON request body before the view runs: 400 when malformed or nested too deep.

    Registered for every route, so schemas and views only ever see bounded, well-formed JSON. A body
    sent with ``Content-Encoding: gzip`` or ``deflate`` is decompressed first, within ``MAX_PREDICT_MB``.
    """
    if request.url_rule is None or not request.is_json:
        return
    limits = settings_of().limits
    data = decoded_body(request.get_data(cache=True), request.headers.get("Content-Encoding"), limits.max_predict_bytes)
    if data.strip():
        parse_body(data, limits.max_batch_rows)


def parse_body(data: bytes, max_rows: int) -> object:
    """A JSON request body decoded: 413 when it holds more arrays and objects than a batch of
    ``max_rows`` needs, 400 when it is not JSON or nests too deep."""
    _check_containers(data, max_rows)
    return decode_json(data, "the body")


def parse_predict_body(data: bytes, max_rows: int) -> object:
    """A predict body decoded as :func:`parse_body` decodes it, except that a large body's ``instances`` of plain
    numbers are read without holding the worker's GIL, as a :class:`~registry.serving.json_rows.NumberRows`
    (``registry/serving/json_rows.py``): the data plane takes their matrix as it would have made it."""
    if len(data) < json_rows.FROM_BYTES:
        return parse_body(data, max_rows)
    _check_containers(data, max_rows)  # before the reader sizes its matrix by the body's length
    found = json_rows.split(data, max_rows)
    if found is None:
        return decode_json(data, "the body")
    rest, rows = found
    body = parse_body(rest, max_rows)
    body["instances"] = rows  # the C reader found the body an object, and orjson agreed: a dict
    return body


def _check_containers(data: bytes, max_rows: int) -> None:
    """413 for a body with more arrays and objects (outside strings) than the largest batch needs."""
    allowed = CONTAINERS_PER_ROW * max_rows + CONTAINER_SLACK
    if data.count(b"[") + data.count(b"{") <= allowed:
        return  # cannot hold more than it has brackets: most bodies stop here
    stripped = _STRINGS.sub(b'""', data)
    found = stripped.count(b"[") + stripped.count(b"{")
    if found > allowed:
        if _nesting(stripped) > MAX_JSON_DEPTH:
            raise _too_deep("the body")  # the more precise refusal of the two
        raise ProblemError(
            413, f"the body holds {found:,} arrays and objects, more than the {allowed:,} a body may hold "
                 f"({CONTAINERS_PER_ROW} for each row of the largest batch, MAX_BATCH_ROWS {max_rows:,}); "
                 "send fewer rows or items per request",
        )


def _nesting(stripped: bytes) -> int:
    """How deep arrays and objects nest in JSON text whose strings were emptied (a chunk at a time)."""
    brackets = np.frombuffer(stripped.translate(None, _NOT_BRACKETS), dtype=np.uint8)
    deepest = level = 0
    for start in range(0, len(brackets), _CHUNK):
        chunk = brackets[start:start + _CHUNK]
        depths = np.cumsum(np.where((chunk == ord("[")) | (chunk == ord("{")), 1, -1).astype(np.int32)) + level
        deepest, level = max(deepest, int(depths.max())), int(depths[-1])
    return deepest


def decode_json(data: bytes | str, what: str, *, malformed: int = 400, **json_options) -> object:
    """``data`` decoded as JSON; 400 when nested too deep, ``malformed`` when it is not JSON.

    ``what`` names the data in the detail. orjson is several times faster on the rows of a batch;
    the standard parser takes over for what orjson refuses (NaN and Infinity tokens, which the
    caller turns into a precise 422, and the nesting orjson stops at) and words the refusal; with
    ``json_options`` (hooks of ``json.loads``) only the standard parser runs.
    """
    if json_options:
        value = _standard_decode(data, what, malformed, json_options)
    else:
        try:
            value = orjson.loads(data)
        except orjson.JSONDecodeError:
            value = _standard_decode(data, what, malformed, json_options)
    if _deeper_than(value, MAX_JSON_DEPTH, data):
        raise _too_deep(what)
    return value


def _standard_decode(data: bytes | str, what: str, malformed: int, json_options: dict) -> object:
    try:
        return json.loads(data, **json_options)
    except RecursionError:
        raise _too_deep(what) from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProblemError(malformed, f"{what} is not valid JSON: {exc}") from None


def _too_deep(what: str) -> ProblemError:
    return ProblemError(400, f"{what} nests arrays/objects deeper than {MAX_JSON_DEPTH} levels; flatten it")


def _deeper_than(value: object, limit: int, data: bytes | str) -> bool:
    """Whether ``value`` (``data`` decoded) nests more than ``limit`` arrays/objects, without recursion: from
    ``data``'s brackets outside strings for a large body, else level by level, a level of scalars (the cells of
    a batch) looked at by C loops only (``map``, ``set``).
    """
    opening = (b"[", b"{") if isinstance(data, bytes) else ("[", "{")
    brackets = data.count(opening[0]) + data.count(opening[1])
    if brackets <= limit:
        return False  # cannot nest deeper than it has brackets: most bodies stop here
    if brackets > _WALK_UP_TO_BRACKETS and isinstance(data, bytes):
        # A batch: its brackets outside strings nest as its values do (it was parsed, so it is valid JSON), and
        # counting them is C loops over the bytes, where the walk below lists every cell (0.3 against 0.9 ms
        # for 2,000 rows of 8 numbers).
        return _nesting(_STRINGS.sub(b'""', data)) > limit
    lists = [value] if type(value) is list else []
    dicts = [value] if type(value) is dict else []
    for _ in range(limit):
        kinds = set(map(type, _members(lists, dicts)))
        if list not in kinds and dict not in kinds:
            return False
        members = list(_members(lists, dicts))
        lists = [m for m in members if type(m) is list] if list in kinds else []
        dicts = [m for m in members if type(m) is dict] if dict in kinds else []
    return bool(lists or dicts)


def _members(lists: list[list], dicts: list[dict]) -> Iterator:
    return chain(chain.from_iterable(lists), chain.from_iterable(map(dict.values, dicts)))
