"""JSON holds finite numbers only. An answer's figure that overflows a double (the mean error of huge
labels, say) is written as ``null``, never as ``Infinity`` or ``NaN``, which are not JSON and which
strict parsers (browsers' ``JSON.parse``, Go, Java) refuse; the predict routes write with orjson,
which does the same. Flask's decoder (``request.get_json``) refuses those tokens, and numbers past
the largest double, with a 400."""
import json
import math

from flask.json.provider import DefaultJSONProvider

from registry.finite_json import finite


class FiniteJSONProvider(DefaultJSONProvider):
    """Flask's JSON provider, writing non-finite numbers as ``null``."""

    def dumps(self, obj, **kwargs) -> str:
        """``obj`` as JSON; written as is when every number in it is finite (the usual case, no copy)."""
        try:
            return super().dumps(obj, **{**kwargs, "allow_nan": False})
        except ValueError:  # a NaN or an infinity somewhere in it
            return super().dumps(finite(obj), **{**kwargs, "allow_nan": False})

    def loads(self, s: str | bytes, **kwargs) -> object:
        """``s`` decoded; ValueError (a 400 from ``get_json``) for NaN, Infinity or a number past a double."""
        return json.loads(s, **{"parse_constant": _refuse_constant, "parse_float": _finite_float, **kwargs})


def _refuse_constant(token: str) -> float:
    raise ValueError(f"{token} is not JSON: send finite numbers")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text[:40]} is past the largest double: send finite numbers")
    return value
