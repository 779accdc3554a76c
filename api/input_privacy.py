"""How a request shows input values: as they are to a token with the right ``read_inputs``, else
each categorical value by its keyed hash (registry.monitoring.masking), keyed with ``SECRET_KEY``."""
from collections.abc import Callable

from flask import Flask, current_app

from api.auth import sees_inputs
from registry.monitoring.masking import value_names


def hidden_value_names(app: Flask) -> Callable[[object], str]:
    """Names that hide values, keyed with the app's SECRET_KEY (read at first use: the dashboard sets its default)."""
    return value_names(lambda: (app.config.get("SECRET_KEY") or "").encode())


def shown_value_names() -> Callable[[object], str]:
    """How this request's caller sees a categorical value: itself, or its keyed hash."""
    return str if sees_inputs() else hidden_value_names(current_app)
