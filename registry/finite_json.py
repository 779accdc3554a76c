"""JSON holds finite numbers only. A figure that is not finite (the upper end of an error's interval
from a single labelled row is infinite; a mean of huge labels overflows) is written as ``null``, never
as ``Infinity`` or ``NaN``: those are not JSON, PostgreSQL's ``json`` type refuses them, and strict
parsers (browsers' ``JSON.parse``, Go, Java) do too. SQLite would store them, so without this the two
backends would keep different figures."""
import json
import math


def finite(value: object) -> object:
    """``value`` with every NaN or infinite float in it, however deep, made ``None``."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(item) for item in value]
    return value


def dumps(value: object, **kwargs) -> str:
    """``value`` as JSON, non-finite numbers written as ``null`` (no copy when every number is finite)."""
    try:
        return json.dumps(value, **{**kwargs, "allow_nan": False})
    except ValueError:  # a NaN or an infinity somewhere in it
        return json.dumps(finite(value), **{**kwargs, "allow_nan": False})
