"""Hyperparameters given as name=value."""
from __future__ import annotations

import math

import pytest

from trainers.errors import ConfigurationError
from trainers.params import parse_params, parse_value


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("8", 8), ("-3", -3), ("0.5", 0.5), ("1e-3", 0.001), ("None", None), ("null", None),
        ("true", True), ("False", False), ("sqrt", "sqrt"), ("'8'", "8"), ('"None"', "None"),
        (" gini ", "gini"),
    ],
)
def test_values_are_read_as_none_bool_int_float_or_text(text, expected):
    value = parse_value(text)
    assert value == expected and type(value) is type(expected)


def test_infinity_is_a_float():
    assert math.isinf(parse_value("inf"))


def test_pairs_become_a_dict_of_typed_values():
    assert parse_params(["max_depth=8", "max_features=sqrt", "bootstrap=false"]) == {
        "max_depth": 8, "max_features": "sqrt", "bootstrap": False,
    }


def test_a_value_may_contain_an_equals_sign():
    assert parse_params(["name=a=b"]) == {"name": "a=b"}


@pytest.mark.parametrize(
    ("pairs", "message"),
    [(["max_depth"], "not of the form name=value"), (["=3"], "not of the form name=value"),
     (["max_depth=3", "max_depth=4"], "given twice")],
)
def test_malformed_or_repeated_params_are_refused(pairs, message):
    with pytest.raises(ConfigurationError, match=message):
        parse_params(pairs)
