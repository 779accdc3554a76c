"""Whether what a documented command printed is what its document shows (docs/testing.md,
"Documented outputs").

A shown ``json`` block is compared as JSON values (one or several, in order), anything else line by
line. Placeholders stand for what differs from run to run (ids, times, hashes, timings):

- ``…`` matches any run of characters within a line, and a line of its own ``…`` any number of lines;
- in JSON, a bare ``…``, the string ``"…"`` or a whole string in angle brackets (``"<time>"``)
  matches any value; a string with ``…`` in it (``"sha256-…"``) any string that fits it; a member ``"…": "…"``
  lets the object have more members than shown; a last item ``"…"`` lets the list have more items;
- a number shown with N digits after the point matches a number that rounds to it there
  (``180.61`` matches ``180.6142``); a whole number matches only itself.
"""
from __future__ import annotations

import difflib
import json
import re
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation

ANY = "…"
NAMED = re.compile(r"<[^<>]+>")


def mismatches(shown: str, printed: str, language: str) -> list[str]:
    """What differs between a shown output block and what its command printed (empty: they agree)."""
    if language == "json":
        return _json_mismatches(shown, printed)
    return _text_mismatches(shown, printed)


# ---- text -----------------------------------------------------------------------------------


def _lines(text: str) -> list[str]:
    lines = [line.rstrip() for line in text.splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def _text_pattern(shown: list[str]) -> re.Pattern:
    parts = []
    for line in shown:
        if line.strip() == ANY:
            parts.append(r"(?:[^\n]*\n)*?")
        else:
            parts.append(".*".join(re.escape(piece) for piece in line.split(ANY)) + r"\n")
    return re.compile("".join(parts))


def _text_mismatches(shown: str, printed: str) -> list[str]:
    expected, actual = _lines(shown), _lines(printed)
    if _text_pattern(expected).fullmatch("".join(line + "\n" for line in actual)):
        return []
    diff = difflib.unified_diff(expected, actual, "shown", "printed", lineterm="", n=1)
    return ["the printed lines differ from the shown ones:\n" + "\n".join(diff)]


# ---- JSON -----------------------------------------------------------------------------------


def _values(text: str, parse_float=float) -> list:
    """Every JSON value in ``text``, in order (commands often print several, with or without newlines)."""
    decoder = json.JSONDecoder(parse_float=parse_float)
    values, index = [], 0
    while True:
        while index < len(text) and text[index].isspace():
            index += 1
        if index == len(text):
            return values
        value, index = decoder.raw_decode(text, index)
        values.append(value)


def _quoted_ellipses(text: str) -> str:
    """``text`` with each ``…`` outside a JSON string written as the string ``"…"``."""
    out, in_string, escaped = [], False, False
    for char in text:
        if in_string:
            in_string = char != '"' or escaped
            escaped = char == "\\" and not escaped
        elif char == '"':
            in_string = True
        out.append(f'"{ANY}"' if char == ANY and not in_string else char)
    return "".join(out)


def _json_mismatches(shown: str, printed: str) -> list[str]:
    try:
        expected = _values(_quoted_ellipses(shown), parse_float=Decimal)  # a shown number keeps its digits
    except json.JSONDecodeError as exc:
        return [f"the shown block is not JSON ({exc}): show whole values, with placeholders"]
    try:
        actual = _values(printed)
    except json.JSONDecodeError as exc:
        return [f"the command printed no JSON ({exc}):\n{printed[:2000]}"]
    if len(expected) != len(actual):
        return [f"{len(expected)} JSON value(s) shown, {len(actual)} printed:\n{printed[:2000]}"]
    found: list[str] = []
    for index, (want, got) in enumerate(zip(expected, actual)):
        _match(want, got, f"[{index}]" if len(expected) > 1 else "$", found)
    return found


def _match(want, got, where: str, found: list[str]) -> None:
    if isinstance(want, str):
        _match_string(want, got, where, found)
    elif isinstance(want, dict):
        _match_object(want, got, where, found)
    elif isinstance(want, list):
        _match_list(want, got, where, found)
    elif isinstance(want, Decimal) or (isinstance(want, int) and not isinstance(want, bool)):
        if not _same_number(want, got):
            found.append(f"{where}: shown {want}, printed {json.dumps(got)}")
    elif want is not got and not (type(want) is type(got) and want == got):
        found.append(f"{where}: shown {json.dumps(want)}, printed {json.dumps(got)}")


def _match_string(want: str, got, where: str, found: list[str]) -> None:
    if want == ANY or NAMED.fullmatch(want):
        return
    if ANY in want:
        pattern = ".*".join(re.escape(piece) for piece in want.split(ANY))
        if not (isinstance(got, str) and re.fullmatch(pattern, got, re.DOTALL)):
            found.append(f"{where}: shown {json.dumps(want, ensure_ascii=False)}, printed {json.dumps(got)}")
    elif want != got:
        found.append(f"{where}: shown {json.dumps(want, ensure_ascii=False)}, printed {json.dumps(got)}")


def _match_object(want: dict, got, where: str, found: list[str]) -> None:
    if not isinstance(got, dict):
        found.append(f"{where}: shown an object, printed {json.dumps(got)[:200]}")
        return
    open_ended = want.get(ANY) == ANY
    named = {key: value for key, value in want.items() if key != ANY}
    for key in named.keys() - got.keys():
        found.append(f"{where}.{key}: shown, not printed")
    if not open_ended:
        for key in sorted(got.keys() - named.keys()):
            found.append(f"{where}.{key}: printed, not shown (show it, or add \"…\": \"…\")")
    for key in named.keys() & got.keys():
        _match(named[key], got[key], f"{where}.{key}", found)


def _match_list(want: list, got, where: str, found: list[str]) -> None:
    if not isinstance(got, list):
        found.append(f"{where}: shown a list, printed {json.dumps(got)[:200]}")
        return
    open_ended = bool(want) and want[-1] == ANY
    items = want[:-1] if open_ended else want
    if len(got) < len(items) or (not open_ended and len(got) != len(items)):
        found.append(f"{where}: shown {len(items)} item(s){' or more' if open_ended else ''}, printed {len(got)}")
        return
    for index, item in enumerate(items):
        _match(item, got[index], f"{where}[{index}]", found)


def _same_number(want: Decimal | int, got) -> bool:
    """``got`` is ``want``; for a shown decimal, once rounded to the digits shown."""
    if isinstance(got, bool) or not isinstance(got, (int, float)):
        return False
    if isinstance(want, int):
        return got == want
    try:
        rounded = Decimal(repr(got)).quantize(Decimal(1).scaleb(want.as_tuple().exponent), rounding=ROUND_HALF_EVEN)
    except InvalidOperation:  # infinite, or too large to hold the shown digits
        return False
    return rounded == want
