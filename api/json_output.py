"""JSON answers hold finite numbers only: a figure that overflows a double (the mean error of huge
labels, say) is written as ``null``, never as ``Infinity`` or ``NaN``, which are not JSON and which
strict parsers (browsers' ``JSON.parse``, Go, Java) refuse. The predict routes write with orjson,
which does the same."""
import math

from flask.json.provider import DefaultJSONProvider


class FiniteJSONProvider(DefaultJSONProvider):
    """Flask's JSON provider, writing non-finite numbers as ``null``."""

    def dumps(self, obj, **kwargs) -> str:
        """``obj`` as JSON; written as is when every number in it is finite (the usual case, no copy)."""
        try:
            return super().dumps(obj, **{**kwargs, "allow_nan": False})
        except ValueError:  # a NaN or an infinity somewhere in it
            return super().dumps(finite(obj), **{**kwargs, "allow_nan": False})


def finite(value: object) -> object:
    """``value`` with every NaN or infinite float in it, however deep, made ``None``."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(item) for item in value]
    return value
