"""Input values named without showing them: what a caller without the right to read logged inputs
sees of a categorical column (its drift bins, its reference's values).

A value is named by a keyed hash, ``value 3f2a9c1b04de``: HMAC-SHA256 keyed with the server's secret
(``SECRET_KEY``), so the same value has the same name in every view, on every worker and in every
version, while a guess (an e-mail address, say) cannot be checked against a name without the key.
"""
import hashlib
import hmac
from collections.abc import Callable
from dataclasses import replace

from registry.monitoring.drift import OTHER, Profile

DIGITS = 12  # 48 bits of the HMAC: no collision among a column's 50 kept values in practice


def value_names(key: Callable[[], bytes]) -> Callable[[object], str]:
    """A function naming a value by its keyed hash; ``key`` is asked at each call (the secret may be set late)."""

    def name(value: object) -> str:
        digest = hmac.new(key(), b"input value\0" + str(value).encode(), hashlib.sha256).hexdigest()
        return f"value {digest[:DIGITS]}"

    return name


def masked_profile(profile: Profile, name_value: Callable[[object], str]) -> Profile:
    """``profile`` with each categorical value replaced by its name (the shared bin ``OTHER`` kept as it is)."""
    if profile.kind != "categorical":
        return profile
    return replace(profile, values=[value if value == OTHER else name_value(value) for value in profile.values])
