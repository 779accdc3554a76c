"""Hyperparameters given on the command line as ``name=value``, parsed into typed values."""
from __future__ import annotations

import re

from trainers.errors import ConfigurationError

_INT = re.compile(r"[+-]?\d+")
_NONE = {"none", "null"}
_BOOLS = {"true": True, "false": False}


def parse_value(text: str) -> None | bool | int | float | str:
    """Read ``None``, a bool, an int, a float, or else a string; quotes force a string."""
    stripped = text.strip()
    if len(stripped) >= 2 and stripped[0] == stripped[-1] and stripped[0] in "'\"":
        return stripped[1:-1]
    lowered = stripped.lower()
    if lowered in _NONE:
        return None
    if lowered in _BOOLS:
        return _BOOLS[lowered]
    if _INT.fullmatch(stripped):
        return int(stripped)
    try:
        return float(stripped)
    except ValueError:
        return stripped


def parse_params(pairs: list[str] | tuple[str, ...]) -> dict:
    """Turn ``["max_depth=8", "criterion=gini"]`` into ``{"max_depth": 8, "criterion": "gini"}``."""
    params: dict = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        name = name.strip()
        if not sep or not name:
            raise ConfigurationError(f"parameter {pair!r} is not of the form name=value")
        if name in params:
            raise ConfigurationError(f"parameter {name!r} is given twice")
        params[name] = parse_value(value)
    return params
